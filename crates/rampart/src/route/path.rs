//! Request-path normalisation: the one canonical form of a path.
//!
//! [`normalize`] turns the path part of a request URI into the single string
//! that both the router matches and the upstream receives, so the two can
//! never disagree about which resource a request names.
//!
//! Threat: path confusion between the gateway and the upstream. A policy
//! written for `/v1/accounts/{id}` must not be reachable-around with
//! `/v1/accounts/..%2Fpayments`, `/v1/accounts/%2e%2e/payments`, `//admin`,
//! `/a\b`, `%00` truncation, overlong UTF-8 (`%C0%AE`) or Tomcat-style
//! `..;/` segments. Anything that an upstream might read as a separator or a
//! dot segment while the gateway reads it as data is refused, never guessed at.
//!
//! Rules, in order:
//! - at most [`MAX_PATH_LEN`] bytes, in and out; must start with `/`;
//! - `%XX` escapes must be well formed; `%2F`, `%5C` and a raw `\` are
//!   refused; control characters (raw or decoded, `< 0x20` and `0x7f`) are
//!   refused; each segment's decoded bytes must be UTF-8;
//! - escapes of unreserved characters (`ALPHA DIGIT - . _ ~`) are decoded
//!   *before* dot-segment removal, so `%2e%2e` is `..`; other escapes are kept
//!   (reserved characters keep their meaning, RFC 3986 §6.2.2.2) with
//!   upper-case hex;
//! - empty segments collapse (`//a///b` is `/a/b`); `.` and `..` are removed
//!   as in RFC 3986 §5.2.4; `..` above the root is refused, not clamped;
//!   a segment whose part before the first `;` is `.` or `..` is refused;
//! - **trailing slash is kept**: `/v1/accounts/` stays distinct from
//!   `/v1/accounts`. The router treats it as a different path (a 404 unless a
//!   template itself ends in `/`). As in RFC 3986, a final `.` or `..`
//!   segment leaves a trailing slash (`/a/b/..` is `/a/`);
//! - every character outside the RFC 3986 `pchar` set (and `%` as data) is
//!   percent-encoded in the output, so the result is a valid URI path and
//!   `normalize(normalize(x)) == normalize(x)`.
//!
//! Failure: every refusal is a [`PathError`]; the caller answers with a
//! 400 problem and logs the variant (at debug level) for operators only.
//! Nothing here panics or allocates more than the output and one buffer.

/// Longest request path accepted, in bytes (input and canonical output).
pub const MAX_PATH_LEN: usize = 8192;

/// Why a request path was refused. Messages are for logs and audit only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("path does not start with '/'")]
    NotAbsolute,
    /// The path, or its canonical form, is longer than [`MAX_PATH_LEN`].
    #[error("path longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    /// An encoded separator (`%2F`, `%5C`), or, in [`decode_segment`], any
    /// `/` inside what should be a single segment.
    #[error("encoded path separator")]
    EncodedSeparator,
    /// A raw backslash, which some upstreams treat as a separator.
    #[error("backslash in path")]
    Backslash,
    /// A control character (`< 0x20` or `0x7f`), raw or percent-encoded.
    #[error("control character in path")]
    ControlCharacter,
    /// A `%` not followed by two hexadecimal digits.
    #[error("malformed percent escape")]
    BadEscape,
    /// A segment whose decoded bytes are not UTF-8 (including overlong forms).
    #[error("decoded path segment is not UTF-8")]
    InvalidUtf8,
    /// A `..` segment that would climb above the root.
    #[error("dot segment climbs above the root")]
    Traversal,
    /// A segment such as `..;x` or `.;x` that some upstreams read as a dot
    /// segment after stripping path parameters.
    #[error("dot segment with path parameter")]
    DotSegmentParameter,
    /// A segment that is only path parameters, such as `;x` or `;`: servers
    /// that strip parameters see an empty segment and merge it away.
    #[error("segment made only of path parameters")]
    EmptySegmentParameter,
    /// An encoded `%` followed by two hex digits (`%252e`, `%2500`,
    /// `%25%32%65`): a backend that decodes twice would see the byte.
    #[error("double-encoded byte")]
    DoubleEncoding,
}

/// RFC 3986 `unreserved`: escapes of these are decoded.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `pchar` minus `pct-encoded`: these may appear raw in the output.
fn is_raw_pchar(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@'
        )
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Reads the escape starting at `bytes[i] == b'%'`; returns the decoded byte.
fn read_escape(bytes: &[u8], i: usize) -> Result<u8, PathError> {
    match (bytes.get(i + 1), bytes.get(i + 2)) {
        (Some(&hi), Some(&lo)) => match (hex_value(hi), hex_value(lo)) {
            (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
            _ => Err(PathError::BadEscape),
        },
        _ => Err(PathError::BadEscape),
    }
}

/// Checks one decoded byte shared by both entry points.
fn check_decoded(b: u8) -> Result<(), PathError> {
    if b == b'/' || b == b'\\' {
        Err(PathError::EncodedSeparator)
    } else if is_control(b) {
        Err(PathError::ControlCharacter)
    } else {
        Ok(())
    }
}

/// Appends the canonical form of one raw segment (no `/` inside) to `out`,
/// and its decoded bytes to `decoded` (cleared first).
fn canonical_segment(raw: &str, out: &mut String, decoded: &mut Vec<u8>) -> Result<(), PathError> {
    decoded.clear();
    let begin = out.len();
    let bytes = raw.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let v = read_escape(bytes, i)?;
            check_decoded(v)?;

            decoded.push(v);
            if is_unreserved(v) {
                out.push(char::from(v));
            } else {
                out.push_str(percent_encoding::percent_encode_byte(v));
            }
            i += 3;
        } else {
            if b == b'\\' {
                return Err(PathError::Backslash);
            }
            if is_control(b) {
                return Err(PathError::ControlCharacter);
            }
            decoded.push(b);
            if is_raw_pchar(b) {
                out.push(char::from(b));
            } else {
                out.push_str(percent_encoding::percent_encode_byte(b));
            }
            i += 1;
        }
    }
    std::str::from_utf8(decoded).map_err(|_| PathError::InvalidUtf8)?;
    // A literal `%` followed by two hex digits, once canonical (`%25` then
    // hex, whether it came as `%252e` or `%25%32%65`), is a double-encoded
    // byte: a backend that decodes twice would see `.`, `/`, NUL, `;`…
    let canonical = out.as_bytes().get(begin..).unwrap_or_default();
    if canonical
        .windows(5)
        .any(|w| matches!(w, [b'%', b'2', b'5', a, b] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit()))
    {
        return Err(PathError::DoubleEncoding);
    }
    // `..;x` / `.;x`: a dot segment to upstreams that strip path parameters.
    if let Some(semi) = decoded.iter().position(|&b| b == b';') {
        let head = decoded.get(..semi).unwrap_or_default();
        if head == b"." || head == b".." {
            return Err(PathError::DotSegmentParameter);
        }
        if head.is_empty() {
            return Err(PathError::EmptySegmentParameter);
        }
    }
    Ok(())
}

/// Returns the canonical form of a request path (query already stripped).
///
/// See the module documentation for the rules. The result starts with `/`,
/// has no empty segment except a trailing one, no `.`/`..` segment, only
/// `pchar` characters and upper-case `%XX` escapes of non-unreserved bytes.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    let mut out = String::with_capacity(raw.len() + 1);
    // Start offset in `out` of each kept segment (the offset of its `/`).
    let mut starts: Vec<usize> = Vec::new();
    let mut decoded: Vec<u8> = Vec::new();
    let mut trailing_slash = false;
    for seg in rest.split('/') {
        if seg.is_empty() {
            trailing_slash = true;
            continue;
        }
        let start = out.len();
        out.push('/');
        canonical_segment(seg, &mut out, &mut decoded)?;
        match out.get(start + 1..) {
            Some(".") => {
                out.truncate(start);
                trailing_slash = true;
            }
            Some("..") => {
                let Some(prev) = starts.pop() else {
                    return Err(PathError::Traversal);
                };
                out.truncate(prev);
                trailing_slash = true;
            }
            _ => {
                starts.push(start);
                trailing_slash = false;
            }
        }
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    if out.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    Ok(out)
}

/// Splits a normalised path into its segments, without the leading `/`.
///
/// `/` yields one empty segment; a trailing slash yields a final empty
/// segment (`/a/` yields `a`, `""`). Segments are still percent-encoded; use
/// [`decode_segment`] for values. The iterator is `Clone`, which the route
/// table uses to backtrack.
pub fn segments(normalized: &str) -> std::str::Split<'_, char> {
    normalized.strip_prefix('/').unwrap_or(normalized).split('/')
}

/// Percent-decodes one segment of a normalised path, for path parameters.
///
/// Strict: malformed escapes, any `/` or `\` (raw or encoded), control
/// characters and non-UTF-8 results are refused.
pub fn decode_segment(seg: &str) -> Result<String, PathError> {
    let bytes = seg.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let v = read_escape(bytes, i)?;
            check_decoded(v)?;
            decoded.push(v);
            i += 3;
        } else {
            match b {
                b'/' => return Err(PathError::EncodedSeparator),
                b'\\' => return Err(PathError::Backslash),
                _ if is_control(b) => return Err(PathError::ControlCharacter),
                _ => decoded.push(b),
            }
            i += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| PathError::InvalidUtf8)
}
