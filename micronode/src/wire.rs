//! Small pieces of HTTP the server and the node share: correlation ids, the error
//! envelope as a [`Response`], and the checks on a request's body headers
//! (content type, content encoding) with the bounded gzip inflater.

use std::io::Read;

use flate2::read::MultiGzDecoder;
use rewarder_core::service::Response;
use rewarder_core::{Code, Error};

/// The correlation-id header, read from requests and echoed on every response.
pub const CORR_ID_HEADER: &str = "X-Corr-ID";
/// Longest client correlation id echoed; a longer or odd one is replaced by a fresh one.
pub const CORR_ID_BYTES_MAX: usize = 64;

/// Whether `id` may be echoed: 1–64 chars of `[A-Za-z0-9._:-]`.
pub fn valid_corr_id(id: &str) -> bool {
    (1..=CORR_ID_BYTES_MAX).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The client's correlation id when valid, else a fresh one.
pub fn corr_id_or_fresh(header: Option<&str>) -> String {
    match header.map(str::trim) {
        Some(id) if valid_corr_id(id) => id.to_owned(),
        _ => fresh_corr_id(),
    }
}

/// A fresh correlation id: 16 random bytes as 32 lowercase hex chars.
pub fn fresh_corr_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: a process-unique counter mixed with the time still correlates.
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        bytes[8..].copy_from_slice(&t.to_be_bytes());
    }
    hex::encode(bytes)
}

/// The API.md §2 envelope for `code` and `message`.
pub fn error_response(code: Code, message: impl Into<String>, corr_id: &str) -> Response {
    Response::error(&Error::new(code, message), corr_id)
}

/// The reason phrase of the statuses this service answers with.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// How a request body is encoded (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No encoding.
    Identity,
    /// gzip (RFC 1952), one or more members.
    Gzip,
}

/// Checks `Content-Type` of a body-carrying `PUT`/`POST`: `application/json`, parameters allowed.
pub fn check_content_type(value: Option<&str>) -> Result<(), Error> {
    let media = value.map(|v| v.split(';').next().unwrap_or("").trim());
    match media {
        Some(m) if m.eq_ignore_ascii_case("application/json") => Ok(()),
        Some(m) => {
            Err(Error::new(Code::UnsupportedMediaType, format!("content type {m:?} is not application/json")))
        }
        None => Err(Error::new(Code::UnsupportedMediaType, "a body needs Content-Type: application/json")),
    }
}

/// Parses `Content-Encoding`: absent, `identity` or `gzip` (`x-gzip`); anything else (several
/// codings included) is `415 unsupported_encoding`.
pub fn parse_encoding(value: Option<&str>) -> Result<Encoding, Error> {
    let Some(value) = value.map(str::trim) else { return Ok(Encoding::Identity) };
    if value.is_empty() || value.eq_ignore_ascii_case("identity") {
        Ok(Encoding::Identity)
    } else if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
        Ok(Encoding::Gzip)
    } else {
        Err(Error::new(
            Code::UnsupportedEncoding,
            format!("content encoding {value:?} is not supported (gzip or identity)"),
        ))
    }
}

/// Inflates a gzip body while enforcing both caps: the output never exceeds `body_max` bytes
/// nor `ratio_max` × the compressed size. The decoder is read through a bounded reader, so at
/// most the cap plus one byte is ever produced — a bomb is refused, never inflated.
pub fn inflate_gzip(compressed: &[u8], body_max: usize, ratio_max: u32) -> Result<Vec<u8>, Error> {
    let cap = body_max.min(compressed.len().saturating_mul(ratio_max as usize));
    // The body is inflated once, into a buffer sized once: a gzip member ends with the size
    // of its data (mod 2^32, RFC 1952 ISIZE), a hint bounded by the caps (a lying trailer
    // only costs a buffer that grows, or one that is too large by at most the cap).
    let hint = match compressed.len().checked_sub(4).and_then(|at| compressed.get(at..)) {
        Some(isize) => u32::from_le_bytes([isize[0], isize[1], isize[2], isize[3]]) as usize,
        None => 0,
    };
    let mut out = Vec::with_capacity(hint.min(cap).saturating_add(1));
    let read = MultiGzDecoder::new(compressed).take(cap as u64 + 1).read_to_end(&mut out);
    match read {
        Err(e) => Err(Error::new(Code::BadRequest, format!("the gzip body is invalid: {e}"))),
        Ok(n) if n > cap => Err(Error::new(
            Code::DecompressionLimit,
            format!(
                "the gzip body inflates beyond {cap} bytes (REQ body cap {body_max}, ratio cap {ratio_max}x of {} bytes)",
                compressed.len()
            ),
        )
        .with_detail("limit_bytes", cap as u64)),
        Ok(_) => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn corr_ids_are_validated_or_generated() {
        assert_eq!(corr_id_or_fresh(Some("abc-1.2:3_z")), "abc-1.2:3_z");
        let fresh = corr_id_or_fresh(Some("has space"));
        assert_eq!(fresh.len(), 32);
        assert!(valid_corr_id(&fresh));
        assert_ne!(corr_id_or_fresh(None), corr_id_or_fresh(None));
        assert!(!valid_corr_id(&"a".repeat(65)));
        assert!(valid_corr_id(&"a".repeat(64)));
        assert!(!valid_corr_id("é"));
    }

    #[test]
    fn content_type_and_encoding_checks() {
        assert!(check_content_type(Some("application/json")).is_ok());
        assert!(check_content_type(Some("Application/JSON; charset=utf-8")).is_ok());
        assert_eq!(check_content_type(Some("text/plain")).unwrap_err().status(), 415);
        assert_eq!(check_content_type(None).unwrap_err().code(), Code::UnsupportedMediaType);
        assert_eq!(parse_encoding(None).unwrap(), Encoding::Identity);
        assert_eq!(parse_encoding(Some("GZIP")).unwrap(), Encoding::Gzip);
        assert_eq!(parse_encoding(Some("br")).unwrap_err().code(), Code::UnsupportedEncoding);
        assert_eq!(parse_encoding(Some("gzip, gzip")).unwrap_err().code(), Code::UnsupportedEncoding);
    }

    #[test]
    fn gzip_round_trips_within_caps() {
        let data = br#"{"hello":"world"}"#.repeat(10);
        let z = gzip(&data);
        assert_eq!(inflate_gzip(&z, 1 << 20, 100).unwrap(), data);
    }

    #[test]
    fn gzip_is_inflated_once_into_a_buffer_sized_from_its_trailer() {
        let data: Vec<u8> = (0..3 << 20).map(|i: u32| b"0123456789,[]"[(i * 7 % 13) as usize]).collect();
        let z = gzip(&data);
        let out = inflate_gzip(&z, 64 << 20, 10_000).unwrap();
        assert_eq!(out, data);
        // Never grown: the capacity is the trailer's size and the byte that tells the end.
        assert_eq!(out.capacity(), data.len() + 1);
    }

    #[test]
    fn gzip_bomb_is_refused_at_the_ratio_cap() {
        let z = gzip(&vec![0u8; 10 << 20]);
        let e = inflate_gzip(&z, 1 << 30, 10).unwrap_err();
        assert_eq!(e.code(), Code::DecompressionLimit);
        assert_eq!(e.details()["limit_bytes"], (z.len() * 10) as u64);
    }

    #[test]
    fn gzip_is_refused_at_the_body_cap_even_within_the_ratio() {
        let data = vec![b'7'; 4096];
        let e = inflate_gzip(&gzip(&data), 4095, 1_000_000).unwrap_err();
        assert_eq!(e.code(), Code::DecompressionLimit);
        assert_eq!(inflate_gzip(&gzip(&data), 4096, 1_000_000).unwrap().len(), 4096);
    }

    #[test]
    fn invalid_gzip_is_a_bad_request() {
        assert_eq!(inflate_gzip(b"not gzip at all", 1 << 20, 10).unwrap_err().code(), Code::BadRequest);
        let mut z = gzip(b"{}");
        z.truncate(z.len() - 3);
        assert_eq!(inflate_gzip(&z, 1 << 20, 10).unwrap_err().code(), Code::BadRequest);
    }
}
