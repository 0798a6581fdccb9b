//! Schemas compiled once at load, with the formats a bank's API needs.
//!
//! Each schema of a spec (a parameter's, a request body's, a response's)
//! is compiled by the `jsonschema` crate into a [`Schema`], in the dialect
//! of the document: JSON Schema 2020-12 for OpenAPI 3.1, draft 4 for 3.0
//! (after `nullable` was converted). `$ref`s resolve inside the document.
//! Formats are asserted, not just annotated: `date`, `date-time`, `uuid`,
//! and the custom `iban` (ISO 13616 mod-97), `bic` (ISO 9362), `currency`
//! (ISO 4217 active codes) and `decimal` (an amount as a decimal string).
//!
//! Threat answered: malformed or out-of-contract input reaching a backend
//! that trusts it (mass assignment, type confusion; OWASP API3, API8). How
//! it fails: a schema that does not compile is a load problem; a value that
//! does not validate yields the JSON pointer of the first fault, never the
//! value.

use serde_json::{json, Value};

use super::openapi::{OasVersion, Spec};

/// A compiled schema.
#[derive(Debug, Clone)]
pub struct Schema {
    validator: jsonschema::Validator,
}

impl Schema {
    /// Compiles the schema at `pointer` in `spec`.
    pub fn compile(spec: &Spec, pointer: &str) -> Result<Self, String> {
        // A JSON pointer in a URI fragment: `{account_id}` and friends
        // percent-encoded (the resolver decodes them).
        const FRAGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
            .add(b' ')
            .add(b'"')
            .add(b'<')
            .add(b'>')
            .add(b'`')
            .add(b'{')
            .add(b'}')
            .add(b'%')
            .add(b'|')
            .add(b'\\')
            .add(b'^')
            .add(b'[')
            .add(b']')
            .add(b'#');
        let fragment = percent_encoding::utf8_percent_encode(pointer, FRAGMENT);
        let mut root = json!({ "$ref": format!("#{fragment}") });
        if let Some(m) = root.as_object_mut() {
            for k in ["components", "paths", "$defs", "definitions"] {
                if let Some(v) = spec.doc.get(k) {
                    m.insert(k.into(), v.clone());
                }
            }
        }
        let draft = match spec.version {
            OasVersion::V31 => jsonschema::Draft::Draft202012,
            OasVersion::V30 => jsonschema::Draft::Draft4,
        };
        let validator = formats(jsonschema::options().with_draft(draft))
            .should_validate_formats(true)
            .build(&root)
            .map_err(|e| e.to_string())?;
        Ok(Self { validator })
    }

    /// Compiles a standalone schema (tests, benches).
    pub fn from_value(schema: &Value) -> Result<Self, String> {
        let validator = formats(jsonschema::options().with_draft(jsonschema::Draft::Draft202012))
            .should_validate_formats(true)
            .build(schema)
            .map_err(|e| e.to_string())?;
        Ok(Self { validator })
    }

    /// `Ok` if `value` conforms; else the JSON pointer of the first fault
    /// and the failing keyword (for logs).
    pub fn check(&self, value: &Value) -> Result<(), Violation> {
        if self.validator.is_valid(value) {
            return Ok(());
        }
        match self.validator.validate(value) {
            Ok(()) => Ok(()),
            Err(e) => Err(Violation {
                pointer: e.instance_path().as_str().to_owned(),
                keyword: keyword_of(&e.to_string()),
            }),
        }
    }
}

/// Where a value failed its schema, and which rule (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer of the offending value.
    pub pointer: String,
    /// A short name of the failed rule, for logs.
    pub keyword: String,
}

/// The first words of a validation message are the rule; values the
/// crate may quote are cut off so logs never hold input.
fn keyword_of(message: &str) -> String {
    let cut = message.find(['"', '\'', '`', ':']).unwrap_or(message.len());
    let mut s: String = message[..cut].chars().take(80).collect();
    if s.trim().is_empty() {
        s = "schema".into();
    }
    s.trim().to_owned()
}

fn formats(o: jsonschema::ValidationOptions<'_>) -> jsonschema::ValidationOptions<'_> {
    o.with_format("date", is_date)
        .with_format("date-time", is_date_time)
        .with_format("uuid", is_uuid)
        .with_format("iban", is_iban)
        .with_format("bic", is_bic)
        .with_format("currency", is_currency)
        .with_format("decimal", is_decimal)
}

/// RFC 3339 `full-date`, with a real day of the month.
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// RFC 3339 `date-time` (`T` or `t`, seconds, optional fraction, `Z` or
/// an offset).
pub fn is_date_time(s: &str) -> bool {
    let Some((date, time)) = s.split_once(['T', 't']) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let b = time.as_bytes();
    if b.len() < 9 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let two = |i: usize, max: u32| -> bool {
        time.get(i..i + 2)
            .filter(|p| p.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|v| v <= max)
    };
    if !(two(0, 23) && two(3, 59) && two(6, 60)) {
        return false;
    }
    let mut rest = &time[8..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest {
        "Z" | "z" => true,
        off => {
            let ob = off.as_bytes();
            ob.len() == 6
                && (ob[0] == b'+' || ob[0] == b'-')
                && ob[3] == b':'
                && off
                    .get(1..3)
                    .and_then(|h| h.parse::<u32>().ok())
                    .is_some_and(|h| h <= 23)
                && off
                    .get(4..6)
                    .and_then(|m| m.parse::<u32>().ok())
                    .is_some_and(|m| m <= 59)
                && off[1..3]
                    .bytes()
                    .chain(off[4..6].bytes())
                    .all(|c| c.is_ascii_digit())
        }
    }
}

/// A UUID in its canonical hyphenated form (any version, either case).
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// An IBAN in electronic form (capitals, no spaces) passing mod-97.
pub fn is_iban(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) && crate::redact::iban_valid(s)
}

/// A BIC (ISO 9362): 4 letters (institution), 2 letters (country), 2
/// letters or digits (location), optionally 3 more (branch).
pub fn is_bic(s: &str) -> bool {
    let b = s.as_bytes();
    (b.len() == 8 || b.len() == 11)
        && b[..6].iter().all(u8::is_ascii_uppercase)
        && b[6..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// ISO 4217 active alphabetic codes (list of 2025), plus `XAU`, `XAG`,
/// `XPT`, `XPD` (precious metals) and `XXX`/`XTS` (no currency / testing).
pub(crate) const ISO_4217: &str =
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL \
BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB \
EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR \
KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN \
NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE \
SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES \
VND VUV WST XAF XAG XAU XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL";

/// An ISO 4217 alphabetic code in use.
pub fn is_currency(s: &str) -> bool {
    // One bit per three-letter code (26^3), built once: a lookup, not a
    // scan of the list, for every amount of every payment.
    static CODES: std::sync::LazyLock<Vec<u64>> = std::sync::LazyLock::new(|| {
        let mut bits = vec![0u64; CODE_SPACE.div_ceil(64)];
        for code in ISO_4217.split_whitespace() {
            if let Some(i) = code_index(code) {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        bits
    });
    code_index(s).is_some_and(|i| CODES[i / 64] & (1 << (i % 64)) != 0)
}

/// Three-letter codes there can be.
const CODE_SPACE: usize = 26 * 26 * 26;

/// The place of a three-capital-letter code among all of them.
fn code_index(s: &str) -> Option<usize> {
    match s.as_bytes() {
        &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => {
            let d = |x: u8| usize::from(x - b'A');
            Some((d(a) * 26 + d(b)) * 26 + d(c))
        }
        _ => None,
    }
}

/// An amount as a decimal string: optional `-`, digits without a leading
/// zero (`0` alone is fine), optional `.` and digits; no exponent, no
/// `+`, at most 34 significant digits (IEEE 754 decimal128).
pub fn is_decimal(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
    digits(int)
        && (int == "0" || !int.starts_with('0'))
        && frac.is_none_or(digits)
        && int.len() + frac.map_or(0, str::len) <= 34
}
