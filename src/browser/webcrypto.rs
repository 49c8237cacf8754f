//! WebCrypto: randomness, SHA-256, and AES-GCM under a non-extractable key.
//!
//! The browser does the cryptography; no hash or cipher code ships in the wasm.

use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AesGcmParams, AesKeyGenParams, Crypto, CryptoKey, SubtleCrypto};

/// AES-GCM's recommended nonce length (NIST SP 800-38D §8.2).
pub const AES_GCM_IV_LEN: usize = 12;

fn crypto() -> Result<Crypto, JsValue> {
    web_sys::window()
        .ok_or_else(|| JsValue::from_str("no window"))?
        .crypto()
}

fn subtle() -> Result<SubtleCrypto, JsValue> {
    Ok(crypto()?.subtle())
}

/// `N` bytes from the browser's CSPRNG (`crypto.getRandomValues`).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], JsValue> {
    let mut bytes = [0u8; N];
    crypto()?.get_random_values_with_u8_array(&mut bytes)?;
    Ok(bytes)
}

/// SHA-256 of `data` (`crypto.subtle.digest`), e.g. for the PKCE S256
/// challenge (RFC 7636 §4.2).
pub async fn sha256(data: &[u8]) -> Result<[u8; 32], JsValue> {
    let digest = JsFuture::from(subtle()?.digest_with_str_and_u8_array("SHA-256", data)?).await?;
    let bytes = Uint8Array::new(&digest).to_vec();
    bytes
        .try_into()
        .map_err(|_| JsValue::from_str("SHA-256 digest is not 32 bytes"))
}

/// A fresh AES-256-GCM key that script can use but never read:
/// `extractable: false`, so `exportKey` fails and a storage dump holds only
/// an opaque handle.
pub async fn generate_storage_key() -> Result<CryptoKey, JsValue> {
    let params = AesKeyGenParams::new("AES-GCM", 256);
    let usages = Array::of2(&"encrypt".into(), &"decrypt".into());
    let key = JsFuture::from(subtle()?.generate_key_with_object(&params, false, &usages)?).await?;
    Ok(key.unchecked_into())
}

fn gcm_params(iv: &[u8; AES_GCM_IV_LEN], associated_data: &[u8]) -> AesGcmParams {
    let params = AesGcmParams::new_with_u8_array("AES-GCM", &Uint8Array::from(&iv[..]));
    params.set_additional_data_u8_array(&Uint8Array::from(associated_data));
    params
}

/// AES-GCM encryption; `associated_data` is authenticated but not encrypted
/// (it binds a record to its namespace).
pub async fn encrypt(
    key: &CryptoKey,
    iv: &[u8; AES_GCM_IV_LEN],
    associated_data: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, JsValue> {
    let params = gcm_params(iv, associated_data);
    let sealed =
        JsFuture::from(subtle()?.encrypt_with_object_and_u8_array(&params, key, plaintext)?)
            .await?;
    Ok(Uint8Array::new(&sealed).to_vec())
}

/// AES-GCM decryption; fails if the ciphertext, IV, key or associated data
/// differ from those used to encrypt.
pub async fn decrypt(
    key: &CryptoKey,
    iv: &[u8; AES_GCM_IV_LEN],
    associated_data: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, JsValue> {
    let params = gcm_params(iv, associated_data);
    let opened =
        JsFuture::from(subtle()?.decrypt_with_object_and_u8_array(&params, key, ciphertext)?)
            .await?;
    Ok(Uint8Array::new(&opened).to_vec())
}

/// `{ name: "ECDSA", ...extra }` as WebCrypto algorithm parameters.
fn ecdsa(extra: (&str, &str)) -> js_sys::Object {
    let params = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&params, &"name".into(), &"ECDSA".into());
    let _ = js_sys::Reflect::set(&params, &extra.0.into(), &extra.1.into());
    params
}

/// A fresh ECDSA P-256 key pair whose private key script can use but never
/// read (`extractable: false`; the public key of a pair is always
/// exportable). Returns the private key and the public key's JWK `x`, `y`.
pub async fn generate_dpop_key() -> Result<(CryptoKey, String, String), JsValue> {
    let params = ecdsa(("namedCurve", "P-256"));
    let usages = Array::of1(&"sign".into());
    let pair = JsFuture::from(subtle()?.generate_key_with_object(&params, false, &usages)?).await?;
    let private: CryptoKey = js_sys::Reflect::get(&pair, &"privateKey".into())?.unchecked_into();
    let public: CryptoKey = js_sys::Reflect::get(&pair, &"publicKey".into())?.unchecked_into();
    let jwk = JsFuture::from(subtle()?.export_key("jwk", &public)?).await?;
    let coordinate = |name: &str| {
        js_sys::Reflect::get(&jwk, &name.into())
            .ok()
            .and_then(|v| v.as_string())
            .ok_or_else(|| JsValue::from_str("the exported public key has no coordinates"))
    };
    Ok((private, coordinate("x")?, coordinate("y")?))
}

/// The ES256 signature of `data` under `key`: WebCrypto gives ECDSA
/// signatures as `r || s`, which is what JWS wants
/// ([RFC 7518 §3.4](https://www.rfc-editor.org/rfc/rfc7518#section-3.4)).
pub async fn sign_es256(key: &CryptoKey, data: &[u8]) -> Result<Vec<u8>, JsValue> {
    let params = ecdsa(("hash", "SHA-256"));
    let signed =
        JsFuture::from(subtle()?.sign_with_object_and_u8_array(&params, key, data)?).await?;
    Ok(Uint8Array::new(&signed).to_vec())
}
