//! Whole seconds from a numeric string (`"expires_in": "3600"`), exactly as
//! `text.parse::<f64>()` followed by a range check and truncation would give
//! them, without linking Rust's float parser: its power-of-five tables alone
//! are about 10 KB of incompressible wasm.
//!
//! The text is read as an exact decimal and compared, with a small bignum,
//! against the few binary fractions where rounding to `f64` could change
//! the answer: the midpoint just below the next whole number, the midpoint
//! just above `max`, and (for negative values) the midpoint between zero and
//! the smallest subnormal, which still rounds to `-0.0`.

use std::cmp::Ordering;

/// Fraction digits kept; any further non-zero digit is folded into one
/// sticky digit. Every threshold compared against below is a multiple of
/// `2^-1075`, which has 1075 fraction digits.
const KEPT_FRACTION_DIGITS: i64 = 1100;

/// `text.parse::<f64>()`, then `Some(n as u64)` if `0 <= n <= max`: the
/// same answer for every input, `"inf"`, `"NaN"` and syntax errors (`None`)
/// included. `max` must be below `2^52`.
pub(crate) fn whole_seconds(text: &str, max: u64) -> Option<u64> {
    debug_assert!(max < 1 << 52);
    let bytes = text.as_bytes();
    let (negative, unsigned) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    // `inf`, `infinity` and `nan` parse, but are never in range.
    let Some((point, digits)) = Decimal::parse(unsigned)?.significant_digits() else {
        return Some(0); // zero, or minus zero
    };
    if negative {
        // Rounds to -0.0 (which passes `n >= 0.0`) only if at most 2^-1075.
        return match point {
            ..=-324 => Some(0),
            -323 => (digits.cmp_scaled(1075, point, 1, 0) != Ordering::Greater).then_some(0),
            _ => None,
        };
    }
    if point > 20 {
        return None;
    }
    if point < -20 {
        return Some(0);
    }
    // Accepted while it rounds to at most `max`: ties go to `max`, whose
    // mantissa is even, so up to `max + 2^(bits(max) - 54)` inclusive.
    let above_max = 54 - bits(max);
    let limit = (u128::from(max) << above_max) + 1;
    if digits.cmp_scaled(above_max, point, limit, 0) == Ordering::Greater {
        return None;
    }
    let floor = digits.integer_part(point);
    // Rounds up to `floor + 1` when within half an ulp below it (a tie goes
    // up too: `floor + 1` has the even mantissa). The ulp below `floor + 1`
    // is that of `floor`'s binade, 2^(bits(floor) - 53).
    let shift = 54 - bits(floor);
    let threshold = (u128::from(floor + 1) << shift) - 1;
    let rounds_up = digits.cmp_scaled(shift, point, threshold, 0) != Ordering::Less;
    Some(floor + u64::from(rounds_up))
}

/// The number of significant bits of `n` (0 for 0).
fn bits(n: u64) -> u32 {
    u64::BITS - n.leading_zeros()
}

/// A syntactically valid decimal: `digits [. digits] [e [sign] digits]`
/// with at least one digit before the exponent, as Rust's parser reads it.
struct Decimal<'a> {
    integer: &'a [u8],
    fraction: &'a [u8],
    exponent: i64,
}

impl<'a> Decimal<'a> {
    fn parse(text: &'a [u8]) -> Option<Self> {
        let digit_run = |from: usize| {
            from + text[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let integer_end = digit_run(0);
        let (fraction, mut at) = match text.get(integer_end) {
            Some(b'.') => {
                let end = digit_run(integer_end + 1);
                (&text[integer_end + 1..end], end)
            }
            _ => (&text[..0], integer_end),
        };
        let integer = &text[..integer_end];
        if integer.is_empty() && fraction.is_empty() {
            return None;
        }
        let mut exponent: i64 = 0;
        if matches!(text.get(at), Some(b'e' | b'E')) {
            at += 1;
            let negative = text.get(at) == Some(&b'-');
            if matches!(text.get(at), Some(b'-' | b'+')) {
                at += 1;
            }
            let end = digit_run(at);
            if end == at {
                return None;
            }
            for digit in &text[at..end] {
                // Saturates like Rust's parser: far beyond any f64 anyway.
                if exponent < 0x10000 {
                    exponent = exponent * 10 + i64::from(digit - b'0');
                }
            }
            at = end;
            if negative {
                exponent = -exponent;
            }
        }
        (at == text.len()).then_some(Decimal {
            integer,
            fraction,
            exponent,
        })
    }

    /// `point`, where the decimal point sits relative to the first
    /// significant digit (the value is 0.d1d2d3… × 10^point, so in
    /// [10^(point-1), 10^point)), and those digits as a bignum, the ones
    /// past [`KEPT_FRACTION_DIGITS`] folded into a sticky digit; `None` if
    /// the value is zero.
    fn significant_digits(&self) -> Option<(i64, Digits)> {
        let all = || self.integer.iter().chain(self.fraction).map(|b| b - b'0');
        let leading_zeros = all().take_while(|&d| d == 0).count();
        if leading_zeros == self.integer.len() + self.fraction.len() {
            return None;
        }
        let point = self.integer.len() as i64 - leading_zeros as i64 + self.exponent;
        if !(-400..=20).contains(&point) {
            // Decided by `point` alone; no digits needed.
            return Some((point, Digits::default()));
        }
        let kept = (point + KEPT_FRACTION_DIGITS).max(0) as usize;
        let mut digits = Digits::default();
        let mut sticky = false;
        for (i, digit) in all().skip(leading_zeros).enumerate() {
            if i < kept {
                digits.push_digit(digit);
            } else {
                sticky |= digit != 0;
            }
        }
        if sticky {
            digits.push_digit(1);
        }
        Some((point, digits))
    }
}

/// The significant digits as an integer `N` (little-endian base-2^32
/// limbs) and how many decimal digits it has, `n`; the value is
/// `N × 10^(point - n)`.
#[derive(Default)]
struct Digits {
    limbs: Vec<u32>,
    count: i64,
}

impl Digits {
    fn push_digit(&mut self, digit: u8) {
        mul_add(&mut self.limbs, 10, u32::from(digit));
        self.count += 1;
    }

    /// `floor(N × 10^(point - n))`, known to fit (the value is at most
    /// about `max`).
    fn integer_part(&self, point: i64) -> u64 {
        let mut n = self.limbs.clone();
        let mut scale = point - self.count;
        while scale > 0 {
            mul_add(&mut n, 10, 0);
            scale -= 1;
        }
        while scale < 0 {
            div_small(&mut n, 10);
            scale += 1;
        }
        n.iter()
            .take(2)
            .rev()
            .fold(0, |acc, &limb| acc << 32 | u64::from(limb))
    }

    /// Compares `value × 2^two` with `x × 10^(-ten)`, where `value` is
    /// `N × 10^(point - n)`, all exactly.
    fn cmp_scaled(&self, two: u32, point: i64, x: u128, ten: i64) -> Ordering {
        let mut left = self.limbs.clone();
        let mut right: Vec<u32> = (0..4).map(|i| (x >> (32 * i)) as u32).collect();
        for _ in 0..two {
            mul_add(&mut left, 2, 0);
        }
        // value × 2^two vs x × 10^-ten  ⇔  N × 10^(point - n + ten) × 2^two vs x.
        let scale = point - self.count + ten;
        for _ in 0..scale.unsigned_abs() {
            mul_add(if scale > 0 { &mut left } else { &mut right }, 10, 0);
        }
        cmp(&left, &right)
    }
}

/// `n = n × factor + carry`.
fn mul_add(n: &mut Vec<u32>, factor: u32, mut carry: u32) {
    for limb in n.iter_mut() {
        let wide = u64::from(*limb) * u64::from(factor) + u64::from(carry);
        *limb = wide as u32;
        carry = (wide >> 32) as u32;
    }
    if carry != 0 {
        n.push(carry);
    }
}

/// `n = n / divisor`, rounding down.
fn div_small(n: &mut [u32], divisor: u32) {
    let mut remainder = 0u64;
    for limb in n.iter_mut().rev() {
        let wide = remainder << 32 | u64::from(*limb);
        *limb = (wide / u64::from(divisor)) as u32;
        remainder = wide % u64::from(divisor);
    }
}

fn cmp(a: &[u32], b: &[u32]) -> Ordering {
    let significant = |n: &[u32]| n.len() - n.iter().rev().take_while(|&&l| l == 0).count();
    let (la, lb) = (significant(a), significant(b));
    la.cmp(&lb)
        .then_with(|| a[..la].iter().rev().cmp(b[..lb].iter().rev()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = super::super::token::MAX_LIFETIME_SECONDS;

    fn oracle(text: &str) -> Option<u64> {
        let n = text.parse::<f64>().ok()?;
        (n >= 0.0 && n <= MAX as f64).then_some(n as u64)
    }

    fn check(text: &str) {
        assert_eq!(whole_seconds(text, MAX), oracle(text), "{text:?}");
    }

    #[test]
    fn agrees_with_the_float_parser_on_edge_cases() {
        let tie_below_one = "0.999999999999999944488848768742172978818416595458984375";
        let two_pow_minus_1075 = format!("{:e}", 2f64.powi(-1074) / 2.0);
        for text in [
            "",
            "+",
            "-",
            ".",
            "e5",
            "1e",
            "1e+",
            "1e-",
            "+-1",
            "--1",
            "1_000",
            "0x10",
            " 1",
            "1 ",
            "1..2",
            "1.2.3",
            "1e2e3",
            "inf",
            "-inf",
            "+infinity",
            "NaN",
            "nan",
            "-nan",
            "Infinity",
            "0",
            "-0",
            "+0",
            "-0.0e-99999999",
            "00000",
            "0.",
            ".0",
            "1.",
            ".5",
            "3600",
            "+3600",
            "3600.9",
            "3600.99999",
            "-1",
            "-0.5",
            "1e3",
            "1E3",
            "1e+3",
            "36e-1",
            "0.0001e4",
            "3153600000",
            "3153600001",
            "3153600000.5",
            "3153600000.0000002384185791015625",
            "3153600000.0000002384185791015626",
            "3153600000.00000023841857910156249999",
            "31536e5",
            "3.1536e9",
            "99999999999999999999999",
            "1e20",
            "1e21",
            "1e308",
            "1e309",
            "1e99999999",
            "1e-99999999",
            "0.000000000000000000001",
            "4.9e-324",
            "-4.9e-324",
            "-2.5e-324",
            "-2.4e-324",
            "-1e-324",
            "-1e-400",
            "-0.1e-322",
            "-9.9e-324",
            "0.99999999999999994",
            "0.99999999999999995",
            "0.9999999999999999444888487687421729788",
            tie_below_one,
            "0.999999999999999944488848768742172978818416595458984374",
            "0.999999999999999944488848768742172978818416595458984375000000001",
            "3599.9999999999995",
            "3599.99999999999954525264911353588104248046875",
            "3599.99999999999954525264911353588104248046874",
            "4294967295.9999999",
            "2147483647.99999988079071044921875",
            "2147483647.99999988079071044921874",
            "1.9999999999999998889776975374843459576368331909179687500",
            "1.9999999999999998889776975374843459576368331909179687499",
        ] {
            check(text);
        }
        check(&format!("-{two_pow_minus_1075}"));
        check(&format!("-{}", "0.".to_owned() + &"0".repeat(323) + "24703282292062327208828439643411068618252990130716238221279284125033775363510437593264991818081799618989828234772285886546332835517796989819938739800539093906315035659515570226392290858392449105184435931802849936536152500319370457678249219365623669863658480757001585769269903706311928279558551332927834338409351978015531246597263579574622766465272827220056374006485499977096599470454020828166226237857393450736339007967761930577506740176324673600968951340535537458516661134223766678604162159680461914467291840300530057530849048765391711386591646239524912623653881879636239373280423891018672348497668235089863388587925628302755995657524455507255189313690836254779186948667994968324049705821028513185451396213837722826145437693412532098591327667236328125"));
        check(&format!("-{}", "0.".to_owned() + &"0".repeat(323) + "24703282292062327208828439643411068618252990130716238221279284125033775363510437593264991818081799618989828234772285886546332835517796989819938739800539093906315035659515570226392290858392449105184435931802849936536152500319370457678249219365623669863658480757001585769269903706311928279558551332927834338409351978015531246597263579574622766465272827220056374006485499977096599470454020828166226237857393450736339007967761930577506740176324673600968951340535537458516661134223766678604162159680461914467291840300530057530849048765391711386591646239524912623653881879636239373280423891018672348497668235089863388587925628302755995657524455507255189313690836254779186948667994968324049705821028513185451396213837722826145437693412532098591327667236328126"));
        check(&("7".repeat(5000) + "e-4990"));
        check(&("0.".to_owned() + &"9".repeat(5000)));
        check(&("3599.".to_owned() + &"9".repeat(3000)));
        check(&("1".to_owned() + &"0".repeat(100_000) + "e-100000"));
    }

    #[test]
    fn agrees_with_the_float_parser_on_random_texts() {
        // A fixed xorshift: the same cases on every run.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for _ in 0..20_000 {
            let mut text = String::new();
            match next(4) {
                0 => text.push('-'),
                1 => text.push('+'),
                _ => {}
            }
            let integer = next(12);
            for _ in 0..integer {
                text.push(char::from(b'0' + next(10) as u8));
            }
            if next(2) == 0 {
                text.push('.');
                // Long runs of nines and zeros sit right at rounding edges.
                let (filler, run) = (if next(2) == 0 { '9' } else { '0' }, next(30));
                for i in 0..next(25) + run {
                    let random = char::from(b'0' + next(10) as u8);
                    text.push(if i < run { filler } else { random });
                }
            }
            if next(3) == 0 {
                text.push(if next(2) == 0 { 'e' } else { 'E' });
                if next(2) == 0 {
                    text.push(if next(2) == 0 { '-' } else { '+' });
                }
                text.push_str(&next(25).to_string());
            }
            check(&text);
        }
    }
}
