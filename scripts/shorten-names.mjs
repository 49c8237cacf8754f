// Shortens the names the wasm module and its wasm-bindgen glue use to talk
// to each other, then minifies the glue: every page that loads latchkey
// downloads both, and the names carry a 16-digit hash each
// (`__wbg_fetch_858ffa201963e190`), written twice (in the wasm's import or
// export section and in the glue) — random digits brotli cannot compress.
//
//   node scripts/shorten-names.mjs <dir>   (rewrites <dir>/latchkey_bg.wasm and <dir>/latchkey.js)
//
// Only names change: the wasm's import names (and their module name) and
// export names, and the glue's matching object keys and `wasm.<export>`
// references. The rewrite checks that every name it maps is found in the
// glue exactly where it expects it, and fails the build otherwise (a new
// wasm-bindgen may write its glue differently).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { transformSync } from "esbuild";

const dir = process.argv[2];
if (!dir) throw new Error("usage: shorten-names.mjs <package dir>");
const wasmFile = join(dir, "latchkey_bg.wasm");
const glueFile = join(dir, "latchkey.js");
const GLUE_MODULE = "./latchkey_bg.js";

// --- reading and writing the binary format (LEB128, names) ---
function readU32(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[at++];
    value |= (byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [value >>> 0, at];
    shift += 7;
  }
}
function u32(value) {
  const out = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}
function readName(bytes, at) {
  const [length, start] = readU32(bytes, at);
  return [Buffer.from(bytes.subarray(start, start + length)).toString("utf8"), start + length];
}
function name(text) {
  const utf8 = Buffer.from(text, "utf8");
  return [...u32(utf8.length), ...utf8];
}
// Skips a `limits` (table and memory types): a flags byte, the minimum, and the maximum when flag 1 is set.
function skipLimits(bytes, at) {
  const flags = bytes[at++];
  [, at] = readU32(bytes, at);
  if (flags & 1) [, at] = readU32(bytes, at);
  return at;
}
// The rest of an import after its names, as raw bytes.
function importDescEnd(bytes, at) {
  const kind = bytes[at++];
  switch (kind) {
    case 0x00: // function: type index
      return readU32(bytes, at)[1];
    case 0x01: // table: reference type, limits
      return skipLimits(bytes, at + 1);
    case 0x02: // memory: limits
      return skipLimits(bytes, at);
    case 0x03: // global: value type, mutability
      return at + 2;
    case 0x04: // tag: attribute, type index
      return readU32(bytes, at + 1)[1];
    default:
      throw new Error(`unknown import kind ${kind}`);
  }
}

// Short names: a, b, …, z, A, …, Z, then two letters, and so on.
const ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
function shortName(i) {
  let s = "";
  do {
    s = ALPHABET[i % ALPHABET.length] + s;
    i = Math.floor(i / ALPHABET.length) - 1;
  } while (i >= 0);
  return s;
}

const wasm = readFileSync(wasmFile);
const imports = new Map(); // old name -> new name
const exports = new Map();
const out = [wasm.subarray(0, 8)];
let at = 8;
while (at < wasm.length) {
  const id = wasm[at];
  const [size, start] = readU32(wasm, at + 1);
  const end = start + size;
  if (id === 2 || id === 7) {
    const [count, first] = readU32(wasm, start);
    const body = [...u32(count)];
    let p = first;
    for (let i = 0; i < count; i++) {
      if (id === 2) {
        const [module, afterModule] = readName(wasm, p);
        const [field, afterField] = readName(wasm, afterModule);
        const descEnd = importDescEnd(wasm, afterField);
        if (module !== GLUE_MODULE) throw new Error(`an import from an unexpected module: ${module}`);
        if (!imports.has(field)) imports.set(field, shortName(imports.size));
        body.push(...name("a"), ...name(imports.get(field)), ...wasm.subarray(afterField, descEnd));
        p = descEnd;
      } else {
        const [field, afterField] = readName(wasm, p);
        const kindAndIndexEnd = readU32(wasm, afterField + 1)[1];
        exports.set(field, shortName(exports.size));
        body.push(...name(exports.get(field)), ...wasm.subarray(afterField, kindAndIndexEnd));
        p = kindAndIndexEnd;
      }
    }
    if (p !== end) throw new Error(`section ${id}: ${end - p} bytes left over`);
    out.push(Buffer.from([id, ...u32(body.length), ...body]));
  } else {
    out.push(wasm.subarray(at, end));
  }
  at = end;
}

let glue = readFileSync(glueFile, "utf8");
const replaceAll = (pattern, replace, what, expected) => {
  let n = 0;
  glue = glue.replace(pattern, (...m) => {
    n += 1;
    return replace(...m);
  });
  if (expected !== undefined && n !== expected) throw new Error(`${what}: ${n} found, ${expected} expected`);
  return n;
};
// The import object's keys: `        __wbg_name_hash: function(` (one per import).
replaceAll(
  /^(\s+)([A-Za-z_$][\w$]*)(: function\s*\()/gm,
  (whole, indent, key, rest) => (imports.has(key) ? `${indent}${imports.get(key)}${rest}` : whole),
  "import keys",
);
for (const key of imports.keys()) {
  if (new RegExp(`^\\s+${key}: function`, "m").test(glue)) throw new Error(`import ${key} left unrenamed`);
}
const missing = [...imports.values()].filter((short) => !new RegExp(`^\\s+${short}: function\\s*\\(`, "m").test(glue));
if (missing.length) throw new Error(`imports the glue does not define: ${missing.length}`);
replaceAll(/"\.\/latchkey_bg\.js": import0/g, () => '"a": import0', "the import module", 1);
// Every `wasm.<export>` reference.
replaceAll(
  /\bwasm\.([A-Za-z_$][\w$]*)/g,
  (whole, key) => {
    if (!exports.has(key)) throw new Error(`the glue uses wasm.${key}, which the module does not export`);
    return `wasm.${exports.get(key)}`;
  },
  "export references",
);
const minified = transformSync(glue, { format: "esm", minify: true, target: "es2022" }).code;
writeFileSync(wasmFile, Buffer.concat(out));
writeFileSync(glueFile, minified);
console.log(`shortened ${imports.size} import and ${exports.size} export names`);
