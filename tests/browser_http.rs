//! The HTTP adapter's bounded body read, run by `wasm-pack test --headless
//! --chrome`: real `Response` streams and a real `fetch` of a `blob:` URL.
#![cfg(target_arch = "wasm32")]

use latchkey::browser::http::{get_json, read_text, MAX_BODY_BYTES};
use latchkey::core::Error;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
// A response whose body is `text` in UTF-8, cut into chunks at the given
// byte offsets, declaring no length unless `declared` is given. `state`
// counts the chunks pulled and says whether the reader cancelled the stream.
export function chunkedResponse(text, cuts, declared, state) {
  const all = new TextEncoder().encode(text);
  const ends = [...cuts, all.length];
  const bytes = ends.map((end, i) => all.slice(i === 0 ? 0 : ends[i - 1], end));
  state.pulled = 0;
  state.cancelled = false;
  const body = new ReadableStream({
    pull(controller) {
      if (state.pulled === bytes.length) return controller.close();
      controller.enqueue(bytes[state.pulled++]);
    },
    cancel() { state.cancelled = true; },
  }, { highWaterMark: 0 });
  const headers = declared === undefined ? {} : { "Content-Length": String(declared) };
  return new Response(body, { headers });
}
export function blobUrl(size) {
  return URL.createObjectURL(new Blob(["x".repeat(size)]));
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = chunkedResponse)]
    fn chunked_response(
        text: &str,
        cuts: Vec<u32>,
        declared: Option<u32>,
        state: &js_sys::Object,
    ) -> web_sys::Response;
    #[wasm_bindgen(js_name = blobUrl)]
    fn blob_url(size: u32) -> String;
}

fn field(state: &js_sys::Object, name: &str) -> JsValue {
    js_sys::Reflect::get(state, &name.into()).unwrap()
}

fn is_too_large(result: &Result<impl std::fmt::Debug, Error>, max: u32) -> bool {
    matches!(result, Err(Error::Network { reason }) if *reason == format!("the answer's body is over {max} bytes"))
}

#[wasm_bindgen_test]
async fn a_body_in_chunks_under_the_bound_is_read_whole() {
    let state = js_sys::Object::new();
    // "é" is two bytes (6 and 7), cut between them: the text is decoded
    // from the joined bytes, not chunk by chunk.
    let response = chunked_response("{\"a\":\"é\",\"b\":1}", vec![2, 7], None, &state);
    let text = read_text(&response, 16).await.unwrap();
    assert_eq!(text, "{\"a\":\"é\",\"b\":1}");
    assert_eq!(field(&state, "pulled"), 3);
    assert_eq!(field(&state, "cancelled"), false);
}

#[wasm_bindgen_test]
async fn a_body_exactly_at_the_bound_is_read() {
    let state = js_sys::Object::new();
    let response = chunked_response("1234567890", vec![5], None, &state);
    assert_eq!(read_text(&response, 10).await.unwrap(), "1234567890");
}

#[wasm_bindgen_test]
async fn a_chunked_body_over_the_bound_is_refused_and_the_stream_cancelled() {
    let state = js_sys::Object::new();
    let response = chunked_response("12345678901never read", vec![5, 10, 11], None, &state);
    let result = read_text(&response, 10).await;
    assert!(is_too_large(&result, 10), "{result:?}");
    assert_eq!(
        field(&state, "pulled"),
        3,
        "reading stopped at the chunk that crossed the bound"
    );
    assert_eq!(field(&state, "cancelled"), true);
}

#[wasm_bindgen_test]
async fn a_declared_length_over_the_bound_is_refused_before_reading() {
    let state = js_sys::Object::new();
    let response = chunked_response("short", vec![], Some(11), &state);
    let result = read_text(&response, 10).await;
    assert!(is_too_large(&result, 10), "{result:?}");
    assert_eq!(field(&state, "pulled"), 0);
}

#[wasm_bindgen_test]
async fn a_declared_length_within_the_bound_is_still_counted() {
    // A length header that understates the body does not let more through.
    let state = js_sys::Object::new();
    let response = chunked_response("12345678901", vec![5], Some(5), &state);
    let result = read_text(&response, 10).await;
    assert!(is_too_large(&result, 10), "{result:?}");
}

#[wasm_bindgen_test]
async fn get_json_refuses_an_answer_over_the_package_bound() {
    let url = blob_url(MAX_BODY_BYTES + 1);
    let result = get_json(&url, 5_000).await;
    assert!(is_too_large(&result.map(|r| r.status), MAX_BODY_BYTES));

    // At the bound the answer is read (and is not JSON: the reply says so).
    let url = blob_url(MAX_BODY_BYTES);
    let reply = get_json(&url, 5_000).await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_err());
}
