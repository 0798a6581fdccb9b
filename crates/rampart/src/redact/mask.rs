//! Validators and masks for account and card numbers.
//!
//! Masks have a fixed shape, whatever the input's length, so that a masked
//! value does not reveal how long the original was: an IBAN keeps its
//! country code, check digits and last four characters
//! (`DE89 **** **** **** 3000`); a card number (PAN) keeps its last four
//! digits (`**** **** **** 1234`, PCI DSS 3.4). A value that does not
//! validate as what it should be (a bad check digit, wrong characters) is
//! masked whole: a typo must not leak more than a valid number would.

use serde::Deserialize;

/// The fully masked form of anything that is not shown at all.
pub const FULL_MASK: &str = "****";

/// How a value is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskStyle {
    /// An IBAN: country, check digits and last four (`DE89 **** **** **** 3000`).
    Iban,
    /// A card number: last four digits (`**** **** **** 1234`).
    Pan,
    /// The last four characters, the rest as `*` (fixed shape `****1234`).
    Last4,
    /// Nothing shown: `****`.
    Full,
}

impl MaskStyle {
    /// The masked form of `value`.
    pub fn apply(self, value: &str) -> String {
        match self {
            MaskStyle::Iban => mask_iban(value),
            MaskStyle::Pan => mask_pan(value),
            MaskStyle::Last4 => {
                let chars: Vec<char> = value.chars().collect();
                if chars.len() <= 4 {
                    return FULL_MASK.to_owned();
                }
                let tail: String = chars[chars.len() - 4..].iter().collect();
                format!("****{tail}")
            }
            MaskStyle::Full => FULL_MASK.to_owned(),
        }
    }
}

/// The digits of `s` if it is only digits, spaces and hyphens.
fn digits_of(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'0'..=b'9' => out.push(b - b'0'),
            b' ' | b'-' => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Whether `s` is a plausible card number: 13 to 19 digits (spaces and
/// hyphens allowed between them) passing the Luhn check.
pub fn luhn_valid(s: &str) -> bool {
    let Some(d) = digits_of(s) else { return false };
    if !(13..=19).contains(&d.len()) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The IBAN in `s` in its electronic form (no spaces, capitals), if `s` is
/// one: two letters, two check digits, 11 to 30 alphanumerics, passing the
/// ISO 13616 mod-97 check.
fn iban_normal(s: &str) -> Option<Iban> {
    // Copied into a fixed buffer: no allocation (the validator checks every
    // IBAN-formatted field of every payment).
    let mut buf = [0u8; 34];
    let mut len = 0;
    for c in s.bytes().filter(|c| *c != b' ') {
        if len == buf.len() || !c.is_ascii_alphanumeric() {
            return None;
        }
        buf[len] = c.to_ascii_uppercase();
        len += 1;
    }
    let b = &buf[..len];
    if len < 15 || !b[..2].iter().all(u8::is_ascii_uppercase) || !b[2..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Move the first four characters to the end; letters count as 10..35.
    // The remainder is taken only when the running number nears the top of
    // a u64 (one short dependency chain per character, not one modulo).
    let mut rem: u64 = 0;
    for &c in b[4..].iter().chain(&b[..4]) {
        let v = if c.is_ascii_digit() {
            u64::from(c - b'0')
        } else {
            u64::from(c - b'A') + 10
        };
        if rem >= 1 << 56 {
            rem %= 97;
        }
        rem = if v >= 10 { rem * 100 + v } else { rem * 10 + v };
    }
    (rem % 97 == 1).then_some(Iban { buf, len })
}

/// An IBAN in its electronic form.
struct Iban {
    buf: [u8; 34],
    len: usize,
}

impl Iban {
    fn as_str(&self) -> &str {
        // Only ASCII alphanumerics were copied in.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// Whether `s` is a valid IBAN (spaces allowed, any case).
pub fn iban_valid(s: &str) -> bool {
    iban_normal(s).is_some()
}

/// `DE89 **** **** **** 3000` for a valid IBAN; `****` for anything else.
pub fn mask_iban(s: &str) -> String {
    match iban_normal(s) {
        Some(iban) => {
            let n = iban.as_str();
            format!("{} **** **** **** {}", &n[..4], &n[n.len() - 4..])
        }
        None => FULL_MASK.to_owned(),
    }
}

/// `**** **** **** 1234` for a card number passing Luhn; `****` for
/// anything else.
pub fn mask_pan(s: &str) -> String {
    if !luhn_valid(s) {
        return FULL_MASK.to_owned();
    }
    let d = digits_of(s).unwrap_or_default();
    let tail: String = d[d.len() - 4..].iter().map(|x| char::from(b'0' + x)).collect();
    format!("**** **** **** {tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibans_of_several_countries_validate_and_mask() {
        // Examples from the national IBAN formats (ECBS / SWIFT registry).
        for (iban, masked) in [
            ("DE89 3704 0044 0532 0130 00", "DE89 **** **** **** 3000"),
            ("GB29NWBK60161331926819", "GB29 **** **** **** 6819"),
            ("FR1420041010050500013M02606", "FR14 **** **** **** 2606"),
            ("NL91ABNA0417164300", "NL91 **** **** **** 4300"),
            ("be68539007547034", "BE68 **** **** **** 7034"),
            ("NO9386011117947", "NO93 **** **** **** 7947"),
            ("MT84MALT011000012345MTLCAST001S", "MT84 **** **** **** 001S"),
        ] {
            assert!(iban_valid(iban), "{iban}");
            assert_eq!(mask_iban(iban), masked);
        }
    }

    #[test]
    fn invalid_ibans_are_masked_whole() {
        for s in [
            "DE89 3704 0044 0532 0130 01",          // check digits fail
            "DE8937040044",                         // too short
            "1289370400440532013000",               // no country
            "DE89-3704-0044-0532-0130-00",          // hyphens are not IBAN syntax
            "DE8937040044053201300000000000000000", // 36 characters: longer than any IBAN
            "",
            "ü",
        ] {
            assert!(!iban_valid(s), "{s}");
            assert_eq!(mask_iban(s), "****");
        }
    }

    proptest::proptest! {
        /// The deferred remainder agrees with ISO 13616's digit-by-digit
        /// mod 97 on every string of IBAN shape, up to the 34 characters of
        /// the buffer, and check digits computed the ISO way validate.
        #[test]
        fn the_mod_97_check_agrees_with_the_iso_computation(
            s in "[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}",
        ) {
            let reference = |s: &str| {
                let b = s.as_bytes();
                b[4..].iter().chain(&b[..4]).fold(0u32, |rem, &c| {
                    let v = value(c);
                    if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 }
                })
            };
            proptest::prop_assert_eq!(iban_valid(&s), reference(&s) == 1, "{}", s);
            let zeroed = format!("{}00{}", &s[..2], &s[4..]);
            let check = 98 - reference(&zeroed);
            let fixed = format!("{}{check:02}{}", &s[..2], &s[4..]);
            proptest::prop_assert!(iban_valid(&fixed), "{}", fixed);
        }
    }

    /// A character's value in ISO 13616's check: digits as such, letters 10..35.
    fn value(c: u8) -> u32 {
        u32::from(if c.is_ascii_digit() {
            c - b'0'
        } else {
            c - b'A' + 10
        })
    }

    #[test]
    fn card_numbers_of_several_brands_pass_luhn_and_keep_last_four() {
        for (pan, last4) in [
            ("4111 1111 1111 1111", "1111"), // Visa
            ("5555-5555-5555-4444", "4444"), // Mastercard
            ("378282246310005", "0005"),     // Amex, 15 digits
            ("6011111111111117", "1117"),    // Discover
            ("3530111333300000", "0000"),    // JCB
            ("4222222222222", "2222"),       // Visa, 13 digits
            ("6304000000000000000", "0000"), // Maestro, 19 digits (Luhn-valid)
        ] {
            assert!(luhn_valid(pan), "{pan}");
            assert_eq!(mask_pan(pan), format!("**** **** **** {last4}"));
        }
        for s in [
            "4111 1111 1111 1112",
            "411111111111",
            "41111111111111111111",
            "4111a111111111111",
            "",
        ] {
            assert!(!luhn_valid(s), "{s}");
            assert_eq!(mask_pan(s), "****");
        }
    }

    #[test]
    fn last4_and_full() {
        assert_eq!(MaskStyle::Last4.apply("abcdef12"), "****ef12");
        assert_eq!(MaskStyle::Last4.apply("1234"), "****");
        assert_eq!(MaskStyle::Last4.apply("ééééé"), "****éééé");
        assert_eq!(MaskStyle::Full.apply("anything"), "****");
    }
}
