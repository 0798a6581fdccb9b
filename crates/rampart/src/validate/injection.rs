//! Injection detection on the strings of a request: path and query
//! parameters, declared headers, and every string (and object key) of a
//! JSON body.
//!
//! Classes: SQL injection and XSS (libinjection's tokenizer and
//! fingerprints, in safe Rust: `libinjectionrs`, plus a few tautology and
//! stacked-query shapes libinjection leaves to context), path traversal,
//! shell command injection, LDAP filter injection, NoSQL operator
//! injection (`$ne`, `$where`, `[$gt]`), and SSRF: a URL whose host is a
//! loopback, private, link-local, unspecified or cloud-metadata address
//! (IP literals in any notation the WHATWG parser accepts, `localhost`
//! names). Host names are not resolved: DNS answers are the upstream's
//! business, and resolving here would let a client make the gateway query
//! any name.
//!
//! Strings with compatibility forms (fullwidth `ｕｎｉｏｎ`, `﹤`, `／`) are
//! also checked folded to NFKC, as a normalising backend would read them.
//!
//! False positives matter as much as misses: names such as `O'Brien`,
//! `Smith & Sons Ltd`, `D'Angelo` and remittance texts with `/`, `-`, `#`
//! pass (tests hold a list of look-alikes).
//!
//! Threat answered: OWASP API8/API10 style injection into backends that
//! build queries, commands, paths or fetches from request data. How it
//! fails: a detector that panics (the libinjection port indexes slices) is
//! caught and counted as a detection: closed, never a crash.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use unicode_normalization::UnicodeNormalization as _;

/// A class of injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InjectionClass {
    /// SQL injection.
    Sqli,
    /// Cross-site scripting.
    Xss,
    /// `../` and friends.
    PathTraversal,
    /// Shell command injection.
    Command,
    /// LDAP filter injection.
    Ldap,
    /// NoSQL query operators.
    Nosql,
    /// A URL to an internal address.
    Ssrf,
}

impl InjectionClass {
    /// Stable name for logs, signals and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqli => "sqli",
            Self::Xss => "xss",
            Self::PathTraversal => "path-traversal",
            Self::Command => "command",
            Self::Ldap => "ldap",
            Self::Nosql => "nosql",
            Self::Ssrf => "ssrf",
        }
    }
}

/// Strings longer than this are scanned on their first part only (the
/// JSON limits bound what can arrive; this bounds the scan's cost).
pub const MAX_SCAN: usize = 16 * 1024;

/// The first class `s` looks like, if any.
pub fn detect(s: &str) -> Option<InjectionClass> {
    if s.len() < 2 {
        return None;
    }
    let s = crate::redact::prefix(s, MAX_SCAN);
    if !inert(s) {
        if let Some(class) = detectors(s) {
            return Some(class);
        }
    }
    if s.is_ascii() {
        return None;
    }
    // A backend that normalises (NFKC, or Windows' best-fit code pages)
    // reads compatibility forms as ASCII: `ｕｎｉｏｎ ｓｅｌｅｃｔ` is `union
    // select` to it, `﹤script﹥` is `<script>`. The folded text is checked
    // too, within the same bound (folding can lengthen a string).
    let folded: String = s.nfkc().collect();
    let f = crate::redact::prefix(&folded, MAX_SCAN);
    if f == s || inert(f) {
        return None;
    }
    detectors(f)
}

/// Every detector, in order, without the [`inert`] shortcut.
pub(super) fn detectors(s: &str) -> Option<InjectionClass> {
    let lower = s.to_ascii_lowercase();
    if is_ssrf(s) {
        return Some(InjectionClass::Ssrf);
    }
    if is_traversal(&lower) {
        return Some(InjectionClass::PathTraversal);
    }
    if is_nosql(&lower) {
        return Some(InjectionClass::Nosql);
    }
    if is_ldap(s) {
        return Some(InjectionClass::Ldap);
    }
    if is_command(&lower) {
        return Some(InjectionClass::Command);
    }
    // Cheap pre-filters: SQL injection needs a quote, a comment, an operator
    // or a keyword; XSS needs markup or a script scheme.
    if xss_shapes(&lower) {
        return Some(InjectionClass::Xss);
    }
    if (lower.contains(['<', '>']) || lower.contains("on") && lower.contains('='))
        && libinjection(|| libinjectionrs::detect_xss(s.as_bytes()).is_injection())
    {
        return Some(InjectionClass::Xss);
    }
    if is_sqli(s, &lower) {
        return Some(InjectionClass::Sqli);
    }
    None
}

/// Words that make a string of letters and digits worth a full look (SQL
/// keywords: `union select 1`, `order by 3`, `1 and 1`).
pub(super) const SQL_WORDS: &[&str] = &[
    "or",
    "and",
    "xor",
    "not",
    "union",
    "select",
    "order",
    "group",
    "by",
    "having",
    "where",
    "like",
    "rlike",
    "waitfor",
    "delay",
    "sleep",
    "benchmark",
    "exec",
    "execute",
    "case",
    "when",
    "then",
    "null",
    "true",
    "false",
    "from",
    "into",
    "table",
    "drop",
    "insert",
    "update",
    "delete",
    "limit",
    "offset",
    "procedure",
];

/// The fast path: a string that only holds letters, digits, spaces and
/// `-`, `_`, `,`, `@`, `+` (a `.` only before a digit, `125.00`), with no
/// `--` and no SQL keyword, cannot match any detector. Most values of a
/// banking payload (names, ids, amounts, IBANs) are such strings.
pub(super) fn inert(s: &str) -> bool {
    if s.is_ascii() {
        inert_ascii(s.as_bytes())
    } else {
        inert_unicode(s)
    }
}

/// What a byte is to [`inert_ascii`]: not inert, a letter or digit (part
/// of a word), an inert separator, `-` or `.` (inert depending on the next
/// byte).
const BAD: u8 = 0;
const WORD: u8 = 1;
const SEP: u8 = 2;
const DASH: u8 = 3;
const DOT: u8 = 4;
const CLASS: [u8; 256] = {
    let mut t = [BAD; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => WORD,
            b'_' | b',' | b'@' | b'+' | b' ' => SEP,
            b'-' => DASH,
            b'.' => DOT,
            _ => BAD,
        };
        c += 1;
    }
    t
};

/// [`inert`] for ASCII text (nearly every key and value): one pass over the
/// bytes, a table lookup each, looking up each word among the SQL keywords
/// as it ends.
pub(super) fn inert_ascii(b: &[u8]) -> bool {
    let mut word = 0;
    for (i, &c) in b.iter().enumerate() {
        let class = CLASS[usize::from(c)];
        if class == WORD {
            continue;
        }
        let ok = match class {
            SEP => true,
            DASH => b.get(i + 1) != Some(&b'-'),
            DOT => b.get(i + 1).is_some_and(u8::is_ascii_digit),
            _ => false,
        };
        if !ok || is_sql_word(&b[word..i]) {
            return false;
        }
        word = i + 1;
    }
    !is_sql_word(&b[word..])
}

/// [`inert`] for text with non-ASCII letters (names with accents).
pub(super) fn inert_unicode(s: &str) -> bool {
    let b = s.as_bytes();
    let chars_ok = s.char_indices().all(|(i, c)| {
        c.is_alphanumeric()
            || matches!(c, ' ' | '-' | '_' | ',' | '@' | '+')
            || (c == '.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
    });
    // Any separator joins keywords for a detector (`union+select`), so
    // every word is looked at, not only words between spaces.
    chars_ok
        && !s.contains("--")
        && !s
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| is_sql_word(w.as_bytes()))
}

/// For each word length up to 9, the first letters (a bit each, `a` = bit
/// 0) of the [`SQL_WORDS`] of that length: most words of a payload are
/// ruled out by this one lookup, without a comparison.
const SQL_FIRST: [u32; 10] = {
    let mut t = [0u32; 10];
    let mut i = 0;
    while i < SQL_WORDS.len() {
        let w = SQL_WORDS[i].as_bytes();
        t[w.len()] |= 1 << (w[0] - b'a');
        i += 1;
    }
    t
};

/// Whether `w` is one of [`SQL_WORDS`], in any case.
fn is_sql_word(w: &[u8]) -> bool {
    let Some(&mask) = SQL_FIRST.get(w.len()) else {
        return false;
    };
    let first = w.first().map_or(0, u8::to_ascii_lowercase);
    if !first.is_ascii_lowercase() || mask & (1 << (first - b'a')) == 0 {
        return false;
    }
    let mut lower = [0u8; 9];
    let lower = &mut lower[..w.len()];
    lower.copy_from_slice(w);
    lower.make_ascii_lowercase();
    SQL_WORDS.iter().any(|k| k.as_bytes() == &lower[..])
}

/// Runs a libinjection check; a panic in it counts as a detection.
fn libinjection(f: impl FnOnce() -> bool + std::panic::UnwindSafe) -> bool {
    std::panic::catch_unwind(f).unwrap_or(true)
}

fn is_sqli(s: &str, lower: &str) -> bool {
    let suspicious = lower.contains(['\'', '"', '`', ';', '(', '=', '#', '|', '&'])
        || lower.contains("--")
        || lower.contains("/*")
        || has_word(lower, "select")
        || has_word(lower, "union")
        || has_word(lower, "or")
        || has_word(lower, "and")
        || has_word(lower, "by");
    if !suspicious {
        return false;
    }
    if libinjection(|| libinjectionrs::detect_sqli(s.as_bytes()).is_injection()) {
        return true;
    }
    sql_shapes(lower)
}

/// Shapes libinjection leaves to context (it fingerprints a fragment as it
/// would appear after a number, not after text): `… or 1=1`, `… and 'a'='a'`,
/// `union select`, stacked statements and time-based probes.
fn sql_shapes(lower: &str) -> bool {
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let pair = |a: &str, b: &str| words.windows(2).any(|w| w[0] == a && w[1] == b);
    if pair("union", "select") || pair("union", "all") || pair("waitfor", "delay") {
        return true;
    }
    for f in [
        "sleep",
        "benchmark",
        "pg_sleep",
        "extractvalue",
        "updatexml",
        "load_file",
    ] {
        if lower.contains(&format!("{f}(")) {
            return true;
        }
    }
    for stmt in [
        "drop", "delete", "insert", "update", "exec", "execute", "shutdown", "truncate", "declare",
    ] {
        if lower
            .split(';')
            .skip(1)
            .any(|part| part.split_whitespace().next() == Some(stmt))
        {
            return true;
        }
    }
    // Comparisons after a boolean operator (`or 1=0`, `and 'a'='b`,
    // `or name()='x'`): probes for blind injection, true or false.
    let t: Vec<&str> = lower.split_whitespace().collect();
    for (i, w) in t.iter().enumerate() {
        if !matches!(
            *w,
            "or" | "and" | "having" | "where" | "rlike" | "xor" | "||" | "&&"
        ) {
            continue;
        }
        let rest = t[i + 1..].join(" ");
        let operand: String = rest
            .trim_start_matches(['(', ' '])
            .chars()
            .take_while(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '\'' | '"' | '(' | ')' | '@' | '.')
            })
            .collect();
        let after = rest.trim_start_matches(['(', ' '])[operand.len()..].trim_start();
        if !operand.is_empty()
            && (after.starts_with('=') || after.starts_with("<>") || after.starts_with("like "))
        {
            return true;
        }
        // `or true--`, `and 1#`: a boolean literal closed by a comment.
        if ["true", "false", "null"].contains(&operand.as_str())
            || operand.chars().all(|c| c.is_ascii_digit()) && !operand.is_empty()
        {
            let tail = after.trim_start();
            if tail.starts_with("--") || tail.starts_with('#') || tail.starts_with("/*") {
                return true;
            }
        }
        if operand == "true--" || operand.starts_with("true") && rest.contains("--") {
            return true;
        }
    }
    // `order by 3--`, `group by 1#`: column enumeration.
    for (i, w) in t.iter().enumerate() {
        if matches!(*w, "order" | "group") && t.get(i + 1) == Some(&"by") {
            if let Some(n) = t.get(i + 2) {
                let digits: String = n.chars().take_while(char::is_ascii_digit).collect();
                let tail = &n[digits.len()..];
                if !digits.is_empty() && (tail.is_empty() || tail.starts_with(['-', '#', '/', ';', ','])) {
                    return true;
                }
            }
        }
    }
    // A word closed by a quote, then a comment: `admin' --`, `admin" #`.
    let b = lower.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if (*c == b'\'' || *c == b'"') && i > 0 && b[i - 1].is_ascii_alphanumeric() {
            let tail = lower[i + 1..].trim_start();
            if tail.starts_with('#') || tail.starts_with("-- ") || tail == "--" || tail.starts_with("/*") {
                return true;
            }
        }
    }
    // Sub-selects probing the database.
    if let Some(i) = lower.find("(select ") {
        let sub = &lower[i..];
        if [
            "@@",
            "substring(",
            "case when",
            " from ",
            "char(",
            "version",
            "count(",
            "database(",
        ]
        .iter()
        .any(|k| sub.contains(k))
        {
            return true;
        }
    }
    if lower.contains("or ''") || lower.contains("or \"\"") {
        return true;
    }
    // Tautologies: `or|and|having|where X = X` with X a number, a quoted
    // string or a word repeated.
    for (i, w) in t.iter().enumerate() {
        if !matches!(*w, "or" | "and" | "having" | "where" | "||" | "&&") {
            continue;
        }
        let rest = t[i + 1..].join(" ");
        if let Some((l, r)) = rest.split_once('=') {
            let l = l.trim().trim_matches(['\'', '"', '(', ')']);
            let r = r.trim().trim_start_matches(['\'', '"', '(']);
            let r: String = r
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !l.is_empty() && l == r && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return true;
            }
        }
    }
    false
}

/// Markup (`<` directly followed by a tag name, `/`, `!` or `?`), script
/// schemes and the calls script payloads are made of.
fn xss_shapes(lower: &str) -> bool {
    let markup = lower
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'/' | b'!' | b'?')));
    markup
        || (lower.contains(':')
            && ["javascript:", "vbscript:", "data:text/html", "livescript:"]
                .iter()
                .any(|p| lower.replace(['\t', '\n', '\r', ' '], "").contains(p)))
        || [
            "alert(",
            "prompt(",
            "confirm(",
            "eval(",
            "document.cookie",
            "document.domain",
            "window.location",
            "fromcharcode(",
            "alert`",
        ]
        .iter()
        .any(|p| lower.contains(p))
}

fn has_word(lower: &str, word: &str) -> bool {
    lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w == word)
}

fn is_traversal(lower: &str) -> bool {
    // Decode up to three layers of percent-encoding (`%252e`), and the
    // overlong / Unicode forms some servers still accept.
    let mut v = lower.to_owned();
    for _ in 0..3 {
        if !v.contains('%') {
            break;
        }
        let d = percent_encoding::percent_decode_str(&v)
            .decode_utf8_lossy()
            .into_owned();
        if d == v {
            break;
        }
        v = d;
    }
    // Compatibility forms the decoding revealed (`%ef%bc%8f` is `／`), as
    // [`detect`] folds those of the raw string.
    if !v.is_ascii() {
        v = v.nfkc().collect();
    }
    if v.contains(['%', '\u{2215}', '\\']) {
        v = v
            .replace("%c0%ae", ".")
            .replace("%c0%af", "/")
            .replace("%c1%9c", "\\")
            .replace(['\u{2215}', '\\'], "/");
    }
    if v.contains("../") || v.ends_with("/..") || v == ".." || v.contains("/..;") || v.contains("..;/") {
        return true;
    }
    // `/..` followed by anything but a name character (`/..%`, `/...`).
    let vb = v.as_bytes();
    if vb.windows(4).any(|w| {
        w[0] == b'/' && w[1] == b'.' && w[2] == b'.' && !(w[3].is_ascii_alphanumeric() || w[3] == b'_')
    }) {
        return true;
    }
    if [
        ".htaccess",
        ".htpasswd",
        "web.config",
        "global.asa",
        "/inetpub/",
        "wwwroot/",
        ".git/",
        "/.env",
        "id_rsa",
    ]
    .iter()
    .any(|f| v.contains(f))
        || v == ".env"
    {
        return true;
    }
    v.starts_with("/etc/")
        || v.contains("/etc/passwd")
        || v.contains("/etc/shadow")
        || v.contains("/proc/self/")
        || v.contains("c:/windows")
        || v.contains("boot.ini")
        || v.contains("win.ini")
        || v.starts_with("file:")
        || v.contains('\0')
}

fn is_nosql(lower: &str) -> bool {
    let decoded = if lower.contains('%') {
        percent_encoding::percent_decode_str(lower).decode_utf8_lossy()
    } else {
        std::borrow::Cow::Borrowed(lower)
    };
    let lower: &str = &decoded;
    const OPS: &[&str] = &[
        "ne",
        "eq",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "nin",
        "regex",
        "where",
        "exists",
        "expr",
        "or",
        "and",
        "not",
        "nor",
        "elemmatch",
        "function",
        "accumulator",
        "lookup",
        "size",
        "type",
        "all",
        "comment",
        "text",
        "mod",
        "jsonschema",
    ];
    let mut rest = lower;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let word: String = after.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        // `$ne` as a key, `[$ne]` in a parameter name, `{"$gt": …}`,
        // `$where: '…'`; not `$5.00` or `US$`.
        let before = rest[..i].chars().last();
        if OPS.contains(&word.as_str()) && before.is_none_or(|c| !c.is_ascii_alphanumeric()) {
            return true;
        }
        rest = after;
    }
    let compact: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    lower.contains("db.")
        && (lower.contains(".find(") || lower.contains(".insert(") || lower.contains(".drop("))
        || compact.contains(";return")
        || lower.contains("this.") && lower.contains("==")
        || compact.contains("newdate()") && compact.contains("while(")
        || js_tautology(&compact)
}

/// `|| 1==1`, `&& 'a'=='a'`: a server-side JavaScript tautology.
fn js_tautology(compact: &str) -> bool {
    for op in ["||", "&&"] {
        for (i, _) in compact.match_indices(op) {
            let rest = &compact[i + 2..];
            if let Some((l, r)) = rest.split_once("==") {
                let l = l.trim_matches(['\'', '"', '(']);
                let r: String = r
                    .trim_start_matches(['=', '\'', '"', '('])
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                if !l.is_empty() && l == r {
                    return true;
                }
            }
        }
    }
    false
}

fn is_ldap(s: &str) -> bool {
    // Filters closed and reopened (`*)(uid=*`, `)(|(`), or a wildcard
    // standing for a whole value followed by a filter.
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains(")(")
        && (compact.contains('=')
            || compact.contains("(|")
            || compact.contains("(&")
            || compact.contains("(!"))
        || compact.starts_with("*)")
        || compact.contains("*)(")
        || compact.contains("(|(")
        || compact.contains("(&(")
        || compact.contains("*()")
        || compact.contains("\\2a")
        || compact.contains("\\28")
        || compact.contains("\\29")
}

fn is_command(lower: &str) -> bool {
    // Newlines as a URL or a JSON-unaware client would write them.
    let decoded = if lower.contains(['%', '\\']) {
        std::borrow::Cow::Owned(
            percent_encoding::percent_decode_str(lower)
                .decode_utf8_lossy()
                .replace("\\n", "\n"),
        )
    } else {
        std::borrow::Cow::Borrowed(lower)
    };
    let lower: &str = &decoded;
    if lower.contains("$(") || lower.contains("${ifs") || lower.contains("${") && lower.contains('}') {
        return true;
    }
    if lower.matches('`').count() >= 2 {
        return true;
    }
    const CMDS: &[&str] = &[
        "cat",
        "ls",
        "id",
        "whoami",
        "uname",
        "wget",
        "curl",
        "nc",
        "ncat",
        "netcat",
        "bash",
        "sh",
        "zsh",
        "ping",
        "sleep",
        "rm",
        "echo",
        "powershell",
        "cmd",
        "nslookup",
        "dig",
        "chmod",
        "chown",
        "python",
        "python3",
        "perl",
        "ruby",
        "php",
        "telnet",
        "ifconfig",
        "ipconfig",
        "net",
        "type",
        "dir",
        "kill",
        "sudo",
        "su",
        "passwd",
        "env",
        "printenv",
        "sysinfo",
        "systeminfo",
        "tasklist",
        "xterm",
        "eval",
        "netstat",
        "system",
        "exec",
        "passthru",
        "shell_exec",
        "popen",
        "proc_open",
    ];
    // A separator (`;`, `|`, `&`, newline) followed by a command name.
    for (i, c) in lower.char_indices() {
        if !matches!(c, ';' | '|' | '&' | '\n' | '\r') {
            continue;
        }
        let after = lower[i + 1..].trim_start_matches([';', '|', '&', ' ', '\t', '\n', '\r']);
        let word: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '/' || *c == '.' || *c == '_')
            .collect();
        let name = word.rsplit('/').next().unwrap_or("");
        if CMDS.contains(&name) {
            // `Smith & Sons`, `R&D`, `Q&A`: a command name must end the
            // word and be followed by an argument-ish character or the end.
            let next = after[word.len()..].chars().next();
            if next.is_none_or(|n| {
                matches!(
                    n,
                    ' ' | '\t' | ';' | '|' | '&' | '$' | '<' | '>' | '`' | '\n' | '('
                )
            }) {
                return true;
            }
        }
    }
    false
}

/// Whether `s` is a URL whose host is internal (loopback, private,
/// link-local, unspecified, carrier-grade NAT, unique-local, multicast,
/// cloud metadata) or whose scheme is one a fetcher should never follow.
pub fn is_ssrf(s: &str) -> bool {
    let t = s.trim();
    let Some(colon) = t.find(':') else {
        return false;
    };
    let scheme = &t[..colon];
    if scheme.is_empty()
        || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        || !t[colon + 1..].starts_with("//")
    {
        return false;
    }
    let Ok(url) = url::Url::parse(t) else {
        return false;
    };
    let scheme = url.scheme();
    if matches!(
        scheme,
        "file" | "gopher" | "dict" | "ldap" | "ldaps" | "ftp" | "tftp" | "jar" | "netdoc" | "php" | "expect"
    ) {
        return true;
    }
    match url.host() {
        None => false,
        Some(url::Host::Ipv4(ip)) => internal_v4(ip),
        Some(url::Host::Ipv6(ip)) => internal_ip(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost"
                || d.ends_with(".localhost")
                || d == "metadata"
                || d == "metadata.google.internal"
                || d.ends_with(".internal")
                || d.ends_with(".local")
                || d == "instance-data"
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // 100.64/10 CGNAT
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
}

/// Whether an address is internal (see [`is_ssrf`]).
pub fn internal_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) // AWS metadata
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 of anything
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0)
            // v4-compatible
        }
    }
}
