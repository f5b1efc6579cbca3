//! A small byte-level JSON scanner (RFC 8259) for the sealed-document parsers.
//!
//! It builds no tree: the parsers walk the document with it and keep only what they need,
//! borrowing strings from the input when they hold no escapes. It does not check document
//! rules (that is `inputs_parse` and `policy_parse`); every syntax error it finds is
//! `malformed_json`. Nothing in it recurses, so hostile nesting cannot exhaust the stack.
//!
//! UTF-8 is checked inside strings only: outside them every byte must be JSON punctuation,
//! whitespace or part of a literal, all ASCII, so a document the scanner accepts is UTF-8.

use std::borrow::Cow;

use crate::error::{Code, Error};

/// Deepest nesting of arrays and objects accepted; anything deeper is `malformed_json`.
pub(crate) const DEPTH_MAX: usize = 128;

// The value skipper keeps one bit per open container in a `u128`.
const _: () = assert!(DEPTH_MAX <= 128);

/// A JSON number, classified the way the documents need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Num {
    /// A non-negative integer (no sign, fraction or exponent) that fits in a `u64`.
    Uint(u64),
    /// A non-negative integer too large for a `u64`.
    UintOverflow,
    /// Any other valid number: it has a sign, a fraction or an exponent (`-0`, `1.0`, `1e3`).
    Other,
}

impl Num {
    /// The value, when this is a non-negative integer no greater than `max`.
    pub(crate) fn uint_max(self, max: u64) -> Option<u64> {
        match self {
            Num::Uint(v) if v <= max => Some(v),
            _ => None,
        }
    }
}

/// A `malformed_json` error at a byte offset.
pub(crate) fn malformed(offset: usize, what: &str) -> Error {
    Error::new(Code::MalformedJson, format!("{what} at byte {offset}"))
        .with_detail("offset", u64::try_from(offset).unwrap_or(u64::MAX))
}

/// Checks that `src` is exactly one JSON value (UTF-8), surrounded by optional whitespace.
pub(crate) fn validate(src: &[u8]) -> Result<(), Error> {
    let mut sc = Scanner::new(src);
    sc.skip_ws();
    sc.skip_value(0)?;
    sc.end()
}

/// Settles the precedence of errors: a rule violation (422) only stands when the whole
/// document is JSON; otherwise the answer is `malformed_json`, wherever the syntax error is.
pub(crate) fn confirm<T>(src: &[u8], result: Result<T, Error>) -> Result<T, Error> {
    match result {
        Err(e) if e.code() != Code::MalformedJson => {
            validate(src)?;
            Err(e)
        }
        other => other,
    }
}

/// A cursor over a JSON text.
///
/// Methods that read a value expect the cursor on its first byte (whitespace skipped) and
/// leave it just past the value.
#[derive(Debug, Clone)]
pub(crate) struct Scanner<'a> {
    src: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `src`.
    pub(crate) fn new(src: &'a [u8]) -> Self {
        Scanner { src, pos: 0 }
    }

    /// The whole text.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.src
    }

    /// The byte offset of the cursor.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Moves the cursor (used by hand-rolled fast paths that scanned ahead).
    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// The byte under the cursor.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    /// Whether the value under the cursor starts like a number.
    pub(crate) fn at_number(&self) -> bool {
        matches!(self.peek(), Some(b'-' | b'0'..=b'9'))
    }

    /// Skips JSON whitespace.
    #[inline]
    pub(crate) fn skip_ws(&mut self) {
        self.pos = skip_ws(self.bytes(), self.pos);
    }

    /// Consumes `byte` if it is under the cursor.
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// Consumes `byte`, or fails with `malformed_json`.
    pub(crate) fn expect(&mut self, byte: u8) -> Result<(), Error> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(malformed(self.pos, &format!("expected '{}'", char::from(byte))))
        }
    }

    /// Checks that only whitespace is left.
    pub(crate) fn end(&mut self) -> Result<(), Error> {
        self.skip_ws();
        if self.pos < self.bytes().len() {
            Err(malformed(self.pos, "trailing characters after the document"))
        } else {
            Ok(())
        }
    }

    /// Reads a string, decoding escapes; borrowed from the input when it holds none.
    pub(crate) fn string(&mut self) -> Result<Cow<'a, str>, Error> {
        let start = self.pos + 1;
        let utf8 = |e: std::str::Utf8Error| malformed(start + e.valid_up_to(), "invalid UTF-8 in a string");
        match self.string_bytes()? {
            Cow::Borrowed(bytes) => std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(utf8),
            Cow::Owned(bytes) => String::from_utf8(bytes).map(Cow::Owned).map_err(|e| utf8(e.utf8_error())),
        }
    }

    /// Reads a string, decoding escapes, *without* checking that it is UTF-8: the caller must
    /// check that, or reject every byte above 0x7F (then the document is refused and
    /// [`confirm`] reports any UTF-8 error as `malformed_json`).
    pub(crate) fn string_bytes(&mut self) -> Result<Cow<'a, [u8]>, Error> {
        let b = self.src;
        let open = self.pos;
        if b.get(open) != Some(&b'"') {
            return Err(malformed(open, "expected a string"));
        }
        let start = open + 1;
        let mut i = string_stop(b, start);
        match b.get(i) {
            Some(b'"') => {
                self.pos = i + 1;
                return Ok(Cow::Borrowed(&b[start..i]));
            }
            Some(b'\\') => {}
            Some(_) => return Err(malformed(i, "control character in a string")),
            None => return Err(malformed(open, "unterminated string")),
        }
        let mut out = Vec::with_capacity(i - start + 8);
        let mut run = start;
        loop {
            // `string_stop` returns an offset in `run..=b.len()`, so the runs are in range.
            match b.get(i) {
                Some(b'"') => {
                    out.extend_from_slice(&b[run..i]);
                    self.pos = i + 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    out.extend_from_slice(&b[run..i]);
                    run = self.escape(i, &mut out)?;
                    i = string_stop(b, run);
                }
                Some(_) => return Err(malformed(i, "control character in a string")),
                None => return Err(malformed(open, "unterminated string")),
            }
        }
    }

    /// Decodes the escape at `at` (a backslash) into `out`; returns the offset after it.
    fn escape(&self, at: usize, out: &mut Vec<u8>) -> Result<usize, Error> {
        let b = self.src;
        let byte = match b.get(at + 1) {
            Some(b'"') => b'"',
            Some(b'\\') => b'\\',
            Some(b'/') => b'/',
            Some(b'b') => 0x08,
            Some(b'f') => 0x0C,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'u') => {
                let hi = hex4(b, at + 2)?;
                let (code, next) = match hi {
                    0xD800..=0xDBFF => {
                        if b.get(at + 6) != Some(&b'\\') || b.get(at + 7) != Some(&b'u') {
                            return Err(malformed(at, "lone leading surrogate"));
                        }
                        let lo = hex4(b, at + 8)?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(malformed(at, "lone leading surrogate"));
                        }
                        (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), at + 12)
                    }
                    0xDC00..=0xDFFF => return Err(malformed(at, "lone trailing surrogate")),
                    _ => (hi, at + 6),
                };
                let c = char::from_u32(code).ok_or_else(|| malformed(at, "bad \\u escape"))?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(next);
            }
            _ => return Err(malformed(at, "bad escape")),
        };
        out.push(byte);
        Ok(at + 2)
    }

    /// Reads a number and classifies it.
    pub(crate) fn number(&mut self) -> Result<Num, Error> {
        let b = self.bytes();
        let start = self.pos;
        let mut i = start;
        let negative = b.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        let mut value: u64 = 0;
        let mut overflow = false;
        match b.get(i) {
            Some(b'0') => {
                i += 1;
                if matches!(b.get(i), Some(b'0'..=b'9')) {
                    return Err(malformed(start, "number with a leading zero"));
                }
            }
            Some(b'1'..=b'9') => {
                while let Some(&d @ b'0'..=b'9') = b.get(i) {
                    match value.checked_mul(10).and_then(|v| v.checked_add(u64::from(d - b'0'))) {
                        Some(v) => value = v,
                        None => overflow = true,
                    }
                    i += 1;
                }
            }
            _ => return Err(malformed(start, "expected a number")),
        }
        let mut integer = !negative;
        if b.get(i) == Some(&b'.') {
            i = digits(b, i + 1).ok_or_else(|| malformed(i, "expected a digit after '.'"))?;
            integer = false;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(b.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            i = digits(b, j).ok_or_else(|| malformed(i, "expected a digit in the exponent"))?;
            integer = false;
        }
        self.pos = i;
        Ok(match (integer, overflow) {
            (false, _) => Num::Other,
            (true, true) => Num::UintOverflow,
            (true, false) => Num::Uint(value),
        })
    }

    /// Skips one value of any type, checking its syntax; `depth` is the number of containers
    /// already open around it. Iterative: one bit per open container says object or array.
    pub(crate) fn skip_value(&mut self, depth: usize) -> Result<(), Error> {
        let mut depth = depth;
        let mut open = 0usize;
        let mut objects: u128 = 0;
        loop {
            // A value starts here.
            self.skip_ws();
            match self.peek() {
                Some(c @ (b'{' | b'[')) => {
                    let object = c == b'{';
                    depth += 1;
                    if depth > DEPTH_MAX {
                        return Err(malformed(self.pos, "nesting deeper than 128"));
                    }
                    open += 1;
                    objects = (objects << 1) | u128::from(object);
                    self.pos += 1;
                    self.skip_ws();
                    let close = if object { b'}' } else { b']' };
                    if !self.eat(close) {
                        if object {
                            self.key()?;
                        }
                        continue;
                    }
                    open -= 1;
                    depth -= 1;
                    objects >>= 1;
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                _ => return Err(malformed(self.pos, "expected a value")),
            }
            if !self.settle(&mut depth, &mut open, &mut objects)? {
                return Ok(());
            }
        }
    }

    /// After a value inside `open` containers: closes the containers that end here, then
    /// either stops before the next value (past `,` and, in an object, the next key and `:`)
    /// and returns true, or returns false when no container is left open.
    fn settle(&mut self, depth: &mut usize, open: &mut usize, objects: &mut u128) -> Result<bool, Error> {
        while *open > 0 {
            self.skip_ws();
            let in_object = *objects & 1 == 1;
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    if in_object {
                        self.skip_ws();
                        self.key()?;
                    }
                    return Ok(true);
                }
                Some(b'}') if in_object => {}
                Some(b']') if !in_object => {}
                _ => {
                    let what = if in_object { "expected ',' or '}'" } else { "expected ',' or ']'" };
                    return Err(malformed(self.pos, what));
                }
            }
            self.pos += 1;
            *open -= 1;
            *depth -= 1;
            *objects >>= 1;
        }
        Ok(false)
    }

    /// Reads an object key and the `:` after it.
    fn key(&mut self) -> Result<(), Error> {
        self.string()?;
        self.skip_ws();
        self.expect(b':')
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Error> {
        let end = self.pos + word.len();
        if self.bytes().get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(())
        } else {
            Err(malformed(self.pos, "expected a value"))
        }
    }

    /// Walks an object (cursor on `{`): for each member `f` gets the decoded key with the
    /// cursor on the value, and must consume the value.
    pub(crate) fn object<F>(&mut self, mut f: F) -> Result<(), Error>
    where
        F: FnMut(&mut Self, Cow<'a, str>) -> Result<(), Error>,
    {
        self.expect(b'{')?;
        self.skip_ws();
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            f(self, key)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(malformed(self.pos, "expected ',' or '}'")),
            }
        }
    }

    /// Walks an array (cursor on `[`): for each element `f` gets its index with the cursor on
    /// it, and must consume it. Returns the number of elements.
    pub(crate) fn array<F>(&mut self, mut f: F) -> Result<usize, Error>
    where
        F: FnMut(&mut Self, usize) -> Result<(), Error>,
    {
        self.expect(b'[')?;
        self.skip_ws();
        if self.eat(b']') {
            return Ok(0);
        }
        let mut index = 0;
        loop {
            f(self, index)?;
            index += 1;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(index);
                }
                _ => return Err(malformed(self.pos, "expected ',' or ']'")),
            }
        }
    }
}

/// The offset of the first non-whitespace byte at or after `i`.
#[inline]
pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
        i += 1;
    }
    i
}

/// The 8 bytes at `i` as a little-endian word (first byte lowest), if there are 8.
#[inline(always)]
pub(crate) fn load8(b: &[u8], i: usize) -> Option<u64> {
    let bytes: [u8; 8] = b.get(i..i + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// The offset of the first `"`, `\` or control character (below 0x20) at or after `i`, or
/// `b.len()` (at least `i`); eight bytes at a time.
#[inline]
fn string_stop(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // `(x - ONES) & !x & HIGHS` flags the zero bytes of x, and `(x - 0x20 * ONES) & !x & HIGHS`
    // the bytes below 0x20. Only a flagged byte borrows from the byte above it, so the lowest
    // flag is exact; it is the only one used.
    while let Some(w) = load8(b, i) {
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w);
        let hits = hits & HIGHS;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    b.len().max(i)
}

/// Past one or more ASCII digits starting at `i`, or `None` if there is none.
fn digits(b: &[u8], mut i: usize) -> Option<usize> {
    let start = i;
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    (i > start).then_some(i)
}

/// The four hex digits at `at` as a number.
fn hex4(b: &[u8], at: usize) -> Result<u32, Error> {
    let quad = b.get(at..at + 4).ok_or_else(|| malformed(at, "short \\u escape"))?;
    quad.iter().try_fold(0u32, |acc, &h| {
        let d = char::from(h).to_digit(16).ok_or_else(|| malformed(at, "bad hex digit in \\u escape"))?;
        Ok(acc << 4 | d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string_of(src: &str) -> Result<Cow<'_, str>, Error> {
        let mut sc = Scanner::new(src.as_bytes());
        let s = sc.string()?;
        sc.end()?;
        Ok(s)
    }

    fn number_of(src: &str) -> Result<Num, Error> {
        let mut sc = Scanner::new(src.as_bytes());
        let n = sc.number()?;
        sc.end()?;
        Ok(n)
    }

    fn is_malformed<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
        matches!(r, Err(e) if e.code() == Code::MalformedJson)
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        assert!(matches!(string_of(r#""acct:alice""#), Ok(Cow::Borrowed("acct:alice"))));
        assert!(matches!(string_of(r#""""#), Ok(Cow::Borrowed(""))));
        assert!(matches!(string_of("\"h\u{e9}llo \u{1F600}\""), Ok(Cow::Borrowed("h\u{e9}llo \u{1F600}"))));
    }

    #[test]
    fn escapes_are_decoded() {
        let s = string_of(r#""a\"b\\c\/d\be\ff\ng\rh\ti""#).unwrap();
        assert!(matches!(s, Cow::Owned(_)));
        assert_eq!(s, "a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti");
        assert_eq!(string_of(r#""\u0061\u00e9\u20AC""#).unwrap(), "a\u{e9}\u{20ac}");
        assert_eq!(string_of(r#""x\u0000y""#).unwrap(), "x\0y");
    }

    #[test]
    fn surrogate_pairs_are_combined_and_lone_surrogates_rejected() {
        assert_eq!(string_of(r#""\uD83D\uDE00""#).unwrap(), "\u{1F600}");
        assert_eq!(string_of(r#""\ud800\udc00""#).unwrap(), "\u{10000}");
        assert_eq!(string_of(r#""\uDBFF\uDFFF""#).unwrap(), "\u{10FFFF}");
        for bad in [r#""\uD83D""#, r#""\uD83Dx""#, r#""\uD83D\u0041""#, r#""\uDE00""#, r#""\uD83D\n""#] {
            assert!(is_malformed(string_of(bad)), "{bad}");
        }
    }

    #[test]
    fn bad_strings_are_malformed() {
        for bad in [
            "\"abc",
            "\"a\\\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12G4\"",
            "\"\\",
            "\"a\nb\"",
            "\"a\tb\"",
            "\"\u{1f}\"",
            "abc",
        ] {
            assert!(is_malformed(string_of(bad)), "{bad:?}");
        }
    }

    #[test]
    fn string_stop_finds_the_first_quote_backslash_or_control_at_every_offset() {
        let naive = |b: &[u8], i: usize| {
            (i..b.len()).find(|&j| b[j] == b'"' || b[j] == b'\\' || b[j] < 0x20).unwrap_or(b.len())
        };
        let alphabet: &[u8] = b"ab\"\\\x00\x1f\x20\x7f\x80\xc3\xa9\xff~!";
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for len in 0..40 {
            for _ in 0..20 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // Mostly plain letters, so that stops fall at every distance.
                        if x.is_multiple_of(5) { alphabet[(x >> 8) as usize % alphabet.len()] } else { b'a' }
                    })
                    .collect();
                for i in 0..=len {
                    assert_eq!(string_stop(&bytes, i), naive(&bytes, i), "{bytes:?} from {i}");
                }
            }
        }
    }

    #[test]
    fn string_bytes_leaves_utf8_to_the_caller() {
        let mut sc = Scanner::new(b"\"a\xffb\"");
        assert_eq!(sc.string_bytes().unwrap(), &b"a\xffb"[..]);
        let mut sc = Scanner::new(b"\"a\xffb\"");
        assert!(is_malformed(sc.string()));
        let mut sc = Scanner::new(b"\"\\u00e9\xc3\xa9\\n\"");
        assert_eq!(sc.string_bytes().unwrap(), "\u{e9}\u{e9}\n".as_bytes());
    }

    #[test]
    fn numbers_are_classified() {
        assert_eq!(number_of("0").unwrap(), Num::Uint(0));
        assert_eq!(number_of("42").unwrap(), Num::Uint(42));
        assert_eq!(number_of("9007199254740991").unwrap(), Num::Uint((1 << 53) - 1));
        assert_eq!(number_of("18446744073709551615").unwrap(), Num::Uint(u64::MAX));
        assert_eq!(number_of("18446744073709551616").unwrap(), Num::UintOverflow);
        for other in
            ["-0", "-1", "1.0", "1e3", "1E+3", "0e0", "1.5e-7", "-0.0", "1e400", "-99999999999999999999999"]
        {
            assert_eq!(number_of(other).unwrap(), Num::Other, "{other}");
        }
        assert_eq!(Num::Uint(7).uint_max(7), Some(7));
        assert_eq!(Num::Uint(8).uint_max(7), None);
        assert_eq!(Num::UintOverflow.uint_max(u64::MAX), None);
        assert_eq!(Num::Other.uint_max(u64::MAX), None);
    }

    #[test]
    fn huge_digit_strings_neither_panic_nor_wrap() {
        let huge = "9".repeat(10_000);
        assert_eq!(number_of(&huge).unwrap(), Num::UintOverflow);
        let huge_frac = format!("{huge}.{huge}e{huge}");
        assert_eq!(number_of(&huge_frac).unwrap(), Num::Other);
        let wraps_to_small = format!("1{}", "0".repeat(20)); // 10^20 mod 2^64 is small
        assert_eq!(number_of(&wraps_to_small).unwrap(), Num::UintOverflow);
    }

    #[test]
    fn bad_numbers_are_malformed() {
        for bad in ["01", "-", "-a", "1.", ".5", "1e", "1e+", "+1", "00", "-01", "1.e3", "0x10", "1_000"] {
            let mut sc = Scanner::new(bad.as_bytes());
            let r = sc.number().and_then(|_| sc.end());
            assert!(is_malformed(r), "{bad}");
        }
    }

    #[test]
    fn validate_accepts_json_with_whitespace_everywhere() {
        let doc = " \t\r\n{ \"a\" : [ 1 , -2.5e+3 , \"x\\u0041\" , true , false , null , { } , [ ] , \
                   { \"b\" : { \"c\" : [ [ ] ] } } ] \n} \n";
        validate(doc.as_bytes()).unwrap();
        for ok in ["0", "\"s\"", "[]", "{}", "null", " true ", "-0", "1e3", "[[],[[]],{\"\":{}}]"] {
            validate(ok.as_bytes()).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn validate_rejects_broken_json() {
        for bad in [
            "",
            "   ",
            "{} x",
            "{}{}",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "{\"a\":}",
            "[1 2]",
            "[",
            "]",
            "{",
            "{\"a\":[}",
            "[}",
            "{]",
            "tru",
            "nul",
            "True",
            "NaN",
            "Infinity",
            "'a'",
            "\u{feff}{}",
            "[1]\0",
            "/* */ {}",
        ] {
            assert!(is_malformed(validate(bad.as_bytes())), "{bad:?}");
        }
    }

    #[test]
    fn nesting_is_limited_to_128_without_recursion() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        validate(nested(DEPTH_MAX).as_bytes()).unwrap();
        assert!(is_malformed(validate(nested(DEPTH_MAX + 1).as_bytes())));
        let objects = |n: usize| format!("{}1{}", "{\"k\":".repeat(n), "}".repeat(n));
        validate(objects(DEPTH_MAX).as_bytes()).unwrap();
        assert!(is_malformed(validate(objects(DEPTH_MAX + 1).as_bytes())));
        // 100k unclosed and closed brackets: an error, not a stack overflow.
        assert!(is_malformed(validate("[".repeat(100_000).as_bytes())));
        assert!(is_malformed(validate(nested(100_000).as_bytes())));
        // Depth counts the containers already open around the skipped value.
        let mut sc = Scanner::new(b"[[]]");
        assert!(is_malformed(sc.skip_value(DEPTH_MAX - 1)));
        let mut sc = Scanner::new(b"[[]]");
        sc.skip_value(DEPTH_MAX - 2).unwrap();
    }

    #[test]
    fn confirm_prefers_malformed_json_over_rule_violations() {
        let rule = || Err::<(), _>(Error::new(Code::Schema, "rule"));
        assert_eq!(confirm(b"{}", rule()).unwrap_err().code(), Code::Schema);
        assert_eq!(confirm(b"{} x", rule()).unwrap_err().code(), Code::MalformedJson);
        assert_eq!(confirm(b"{}", Ok(5)).unwrap(), 5);
    }

    #[test]
    fn object_and_array_walkers_visit_every_member() {
        let mut sc = Scanner::new(br#"{ "a" : [1, 2 ,3] , "b\u0063" : [] }"#);
        let mut seen = Vec::new();
        sc.object(|sc, key| {
            let n = sc.array(|sc, _| sc.number().map(drop))?;
            seen.push((key.into_owned(), n));
            Ok(())
        })
        .unwrap();
        sc.end().unwrap();
        assert_eq!(seen, [("a".to_owned(), 3), ("bc".to_owned(), 0)]);
    }

    #[test]
    fn invalid_utf8_is_malformed_inside_and_outside_strings() {
        for bad in [
            &b"{\"a\":\"\xff\"}"[..],
            b"\"\xc3\"",
            b"\"a\\n\xc3\"",
            b"{\"\xed\xa0\x80\":1}",
            b"\xef\xbb\xbf{}",
            b"[1,\xc3\xa9]",
            b"{} \xc3\xa9",
        ] {
            assert!(is_malformed(validate(bad)), "{bad:?}");
        }
        validate("{\"\u{e9}\":\"\u{1F600}\\n\u{20ac}\"}".as_bytes()).unwrap();
    }
}
