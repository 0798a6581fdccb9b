//! Why authentication failed: a precise cause for the log and the audit
//! trail, and the coarse RFC 6750 class that is all the client ever sees.
//!
//! Threat answered: the gateway as an oracle. Telling a caller "unknown kid"
//! versus "bad signature" versus "expired" helps an attacker probe keys and
//! clocks; so every [`AuthnError`] maps to one of a handful of
//! [`ErrorClass`]es, each with one fixed description, and the precise
//! [`AuthnError::cause`] goes only to logs.

use http::HeaderValue;

/// Every way authentication can fail. The `Display` text is for logs and
/// never contains the credential itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthnError {
    // --- the request ---
    /// No `Authorization` header.
    #[error("no credentials")]
    MissingCredentials,
    /// More than one `Authorization` header.
    #[error("more than one Authorization header")]
    MultipleAuthorization,
    /// The `Authorization` header is not `Bearer <token>` / `DPoP <token>`.
    #[error("malformed Authorization header")]
    MalformedAuthorization,
    /// A scheme other than `Bearer` or `DPoP`.
    #[error("unsupported authorization scheme")]
    UnsupportedScheme,

    // --- the access token ---
    /// Not a compact JWS, bad base64url, bad JSON, or too long.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg: none`.
    #[error("alg none")]
    AlgNone,
    /// An `alg` the issuer does not allow (or does not exist).
    #[error("alg not allowed: {0}")]
    AlgNotAllowed(String),
    /// The header carries `jku`, `x5u`, `jwk` or `crit`, which are never
    /// followed.
    #[error("forbidden header parameter: {0}")]
    ForbiddenHeader(&'static str),
    /// `typ` is not what the issuer requires (or is a DPoP proof's).
    #[error("wrong typ")]
    WrongTyp,
    /// No key with this `kid` allows this `alg`, even after a refresh.
    #[error("unknown kid")]
    UnknownKid,
    /// The issuer's keys have never been loaded.
    #[error("no keys available for the issuer")]
    KeysUnavailable,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `iss` is not the issuer's.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` names none of the accepted audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// `exp` has passed.
    #[error("expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("issued in the future")]
    IssuedInFuture,
    /// A claim the issuer requires is missing, or a registered claim has
    /// the wrong type.
    #[error("missing or invalid claim: {0}")]
    Claim(String),
    /// Introspection (RFC 7662) answered `"active": false` (or not `true`).
    #[error("token not active (introspection)")]
    Inactive,
    /// The introspection endpoint is down, slow, or answered nonsense: fail
    /// closed.
    #[error("introspection unavailable: {0}")]
    IntrospectionUnavailable(String),

    // --- client certificates as identity ---
    /// The route needs a client certificate and none was presented.
    #[error("no client certificate")]
    ClientCertificateMissing,
    /// The certificate maps to no `[[mtls.clients]]` entry.
    #[error("client certificate not mapped to a client")]
    CertificateUnknown,
    /// The certificate's serial is in the CRL of its issuer.
    #[error("client certificate revoked")]
    CertificateRevoked,
    /// The certificate (or the `Client-Cert` header carrying it) cannot be
    /// parsed, or is outside its validity period.
    #[error("client certificate invalid: {0}")]
    CertificateInvalid(&'static str),

    // --- sender constraint ---
    /// The issuer (or route) requires a sender-constrained token and this
    /// one is a plain bearer token.
    #[error("sender-constrained token required")]
    SenderConstraintRequired,
    /// A DPoP-bound token (`cnf.jkt`) sent with the `Bearer` scheme, or a
    /// `DPoP`-scheme request whose token is not DPoP-bound.
    #[error("token binding and authorization scheme disagree")]
    SchemeMismatch,
    /// `cnf.x5t#S256` present and no client certificate was presented.
    #[error("certificate-bound token without a client certificate")]
    CertificateMissing,
    /// `cnf.x5t#S256` does not match the client certificate.
    #[error("certificate thumbprint mismatch")]
    CertificateMismatch,

    // --- the DPoP proof ---
    /// No `DPoP` header on a request that needs one.
    #[error("DPoP proof missing")]
    DpopMissing,
    /// More than one `DPoP` header.
    #[error("more than one DPoP header")]
    DpopMultiple,
    /// The proof is not a well-formed JWS with the required members.
    #[error("malformed DPoP proof: {0}")]
    DpopMalformed(&'static str),
    /// `typ` is not `dpop+jwt`.
    #[error("DPoP proof typ is not dpop+jwt")]
    DpopWrongTyp,
    /// A symmetric, unknown or not-allowed `alg`.
    #[error("DPoP proof alg not allowed: {0}")]
    DpopAlgNotAllowed(String),
    /// The embedded `jwk` holds private key members.
    #[error("DPoP proof jwk contains a private key")]
    DpopPrivateKey,
    /// The embedded `jwk` is unusable, or does not fit `alg`.
    #[error("DPoP proof jwk invalid")]
    DpopBadKey,
    /// The proof's signature does not verify with its own `jwk`.
    #[error("DPoP proof bad signature")]
    DpopBadSignature,
    /// `htm` is not the request method.
    #[error("DPoP htm mismatch")]
    DpopHtmMismatch,
    /// `htu` is not the request URL.
    #[error("DPoP htu mismatch")]
    DpopHtuMismatch,
    /// `iat` is outside the accepted window.
    #[error("DPoP iat outside the window")]
    DpopIatOutOfWindow,
    /// `ath` is not the hash of the access token.
    #[error("DPoP ath mismatch")]
    DpopAthMismatch,
    /// The token's `cnf.jkt` is not the thumbprint of the proof key.
    #[error("DPoP key does not match the token's cnf.jkt")]
    DpopCnfMismatch,
    /// This proof (`jti`) was seen before.
    #[error("DPoP proof replayed")]
    DpopReplayed,
    /// Server nonces are required and the proof has none, or a stale one.
    #[error("DPoP nonce missing or stale")]
    DpopNonce,
    /// The replay cache could not be asked (e.g. Redis down): fail closed.
    #[error("DPoP replay cache unavailable")]
    ReplayCacheUnavailable,

    // --- API keys ---
    /// More than one API-key header.
    #[error("more than one API-key header")]
    ApiKeyMultiple,
    /// The header value is not an `rk_…` key.
    #[error("malformed API key")]
    ApiKeyMalformed,
    /// No key with this id.
    #[error("unknown API key id")]
    ApiKeyUnknown,
    /// The key id is known and the secret does not match.
    #[error("API key secret mismatch")]
    ApiKeyMismatch,
    /// The key was revoked.
    #[error("API key revoked")]
    ApiKeyRevoked,
    /// The key is past its expiry.
    #[error("API key expired")]
    ApiKeyExpired,
    /// The key was rotated and its overlap has ended.
    #[error("API key rotated out")]
    ApiKeyRotated,
    /// The API-key store could not be asked: fail closed.
    #[error("API-key store unavailable")]
    ApiKeyStoreUnavailable,
    // --- revocation and brute force ---
    /// The token's `jti`, its `sub` or its `client_id` is on the
    /// revocation list.
    #[error("revoked ({0})")]
    Revoked(super::revocation::RevocationKind),
    /// The shared revocation store could not be asked and `[redis]
    /// on_failure` is `deny`: the pipeline answers 503, not 401.
    #[error("revocation store unavailable")]
    RevocationUnavailable,
    /// The request's API-key id is banned after repeated failures.
    #[error("API key id banned after repeated authentication failures")]
    ApiKeyBanned,
}

/// What the client is told: the RFC 6750 / RFC 9449 error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// No credentials at all: a challenge without an error code
    /// (RFC 6750 §3.1).
    NoCredentials,
    /// `invalid_request`: the request is malformed (HTTP 400).
    InvalidRequest,
    /// `invalid_token`: the token is expired, revoked, malformed or
    /// otherwise invalid (HTTP 401).
    InvalidToken,
    /// `insufficient_scope` (HTTP 403); produced by authorization, listed
    /// here so that one type renders every challenge.
    InsufficientScope,
    /// `invalid_dpop_proof` (RFC 9449 §7.1, HTTP 401).
    InvalidDpopProof,
    /// `use_dpop_nonce` (RFC 9449 §9, HTTP 401, with `DPoP-Nonce`).
    UseDpopNonce,
}

impl ErrorClass {
    /// The `error` parameter value, if any.
    pub fn code(self) -> Option<&'static str> {
        match self {
            Self::NoCredentials => None,
            Self::InvalidRequest => Some("invalid_request"),
            Self::InvalidToken => Some("invalid_token"),
            Self::InsufficientScope => Some("insufficient_scope"),
            Self::InvalidDpopProof => Some("invalid_dpop_proof"),
            Self::UseDpopNonce => Some("use_dpop_nonce"),
        }
    }

    /// The one fixed description a client sees for this class.
    pub fn description(self) -> Option<&'static str> {
        match self {
            Self::NoCredentials => None,
            Self::InvalidRequest => Some("The request is missing a required parameter or is malformed"),
            Self::InvalidToken => Some("The access token is invalid"),
            Self::InsufficientScope => Some("The access token does not grant the required scope"),
            Self::InvalidDpopProof => Some("The DPoP proof is invalid"),
            Self::UseDpopNonce => Some("Authorization server requires nonce in DPoP proof"),
        }
    }

    /// HTTP status for this class (RFC 6750 §3.1).
    pub fn status(self) -> http::StatusCode {
        match self {
            Self::InvalidRequest => http::StatusCode::BAD_REQUEST,
            Self::InsufficientScope => http::StatusCode::FORBIDDEN,
            _ => http::StatusCode::UNAUTHORIZED,
        }
    }
}

/// The authentication scheme a challenge is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `Bearer` (RFC 6750).
    Bearer,
    /// `DPoP` (RFC 9449).
    Dpop,
}

impl AuthnError {
    /// The class the client is told.
    pub fn class(&self) -> ErrorClass {
        use AuthnError as E;
        match self {
            E::MissingCredentials | E::ClientCertificateMissing => ErrorClass::NoCredentials,
            E::MultipleAuthorization
            | E::MalformedAuthorization
            | E::UnsupportedScheme
            | E::DpopMultiple
            | E::ApiKeyMultiple => ErrorClass::InvalidRequest,
            E::Malformed(_)
            | E::AlgNone
            | E::AlgNotAllowed(_)
            | E::ForbiddenHeader(_)
            | E::WrongTyp
            | E::UnknownKid
            | E::KeysUnavailable
            | E::BadSignature
            | E::WrongIssuer
            | E::WrongAudience
            | E::Expired
            | E::NotYetValid
            | E::IssuedInFuture
            | E::Claim(_)
            | E::Inactive
            | E::IntrospectionUnavailable(_)
            | E::CertificateUnknown
            | E::CertificateRevoked
            | E::CertificateInvalid(_)
            | E::SenderConstraintRequired
            | E::SchemeMismatch
            | E::CertificateMissing
            | E::CertificateMismatch
            | E::ApiKeyMalformed
            | E::ApiKeyUnknown
            | E::ApiKeyMismatch
            | E::ApiKeyRevoked
            | E::ApiKeyExpired
            | E::ApiKeyRotated
            | E::ApiKeyStoreUnavailable => ErrorClass::InvalidToken,
            E::Revoked(_) | E::RevocationUnavailable | E::ApiKeyBanned => ErrorClass::InvalidToken,
            E::DpopMissing
            | E::DpopMalformed(_)
            | E::DpopWrongTyp
            | E::DpopAlgNotAllowed(_)
            | E::DpopPrivateKey
            | E::DpopBadKey
            | E::DpopBadSignature
            | E::DpopHtmMismatch
            | E::DpopHtuMismatch
            | E::DpopIatOutOfWindow
            | E::DpopAthMismatch
            | E::DpopCnfMismatch
            | E::DpopReplayed
            | E::ReplayCacheUnavailable => ErrorClass::InvalidDpopProof,
            E::DpopNonce => ErrorClass::UseDpopNonce,
        }
    }

    /// A stable, greppable code for the log and the audit record
    /// (`authn.expired`, `authn.dpop_replayed`, …). Never sent to clients.
    pub fn cause(&self) -> &'static str {
        use AuthnError as E;
        match self {
            E::MissingCredentials => "authn.missing_credentials",
            E::MultipleAuthorization => "authn.multiple_authorization",
            E::MalformedAuthorization => "authn.malformed_authorization",
            E::UnsupportedScheme => "authn.unsupported_scheme",
            E::Malformed(_) => "authn.malformed_token",
            E::AlgNone => "authn.alg_none",
            E::AlgNotAllowed(_) => "authn.alg_not_allowed",
            E::ForbiddenHeader(_) => "authn.forbidden_header",
            E::WrongTyp => "authn.wrong_typ",
            E::UnknownKid => "authn.unknown_kid",
            E::KeysUnavailable => "authn.keys_unavailable",
            E::BadSignature => "authn.bad_signature",
            E::WrongIssuer => "authn.wrong_issuer",
            E::WrongAudience => "authn.wrong_audience",
            E::Expired => "authn.expired",
            E::NotYetValid => "authn.not_yet_valid",
            E::IssuedInFuture => "authn.issued_in_future",
            E::Claim(_) => "authn.claim",
            E::Inactive => "authn.inactive",
            E::IntrospectionUnavailable(_) => "authn.introspection_unavailable",
            E::ClientCertificateMissing => "authn.client_certificate_missing",
            E::CertificateUnknown => "authn.certificate_unknown",
            E::CertificateRevoked => "authn.certificate_revoked",
            E::CertificateInvalid(_) => "authn.certificate_invalid",
            E::SenderConstraintRequired => "authn.sender_constraint_required",
            E::SchemeMismatch => "authn.scheme_mismatch",
            E::CertificateMissing => "authn.certificate_missing",
            E::CertificateMismatch => "authn.certificate_mismatch",
            E::DpopMissing => "authn.dpop_missing",
            E::DpopMultiple => "authn.dpop_multiple",
            E::DpopMalformed(_) => "authn.dpop_malformed",
            E::DpopWrongTyp => "authn.dpop_wrong_typ",
            E::DpopAlgNotAllowed(_) => "authn.dpop_alg_not_allowed",
            E::DpopPrivateKey => "authn.dpop_private_key",
            E::DpopBadKey => "authn.dpop_bad_key",
            E::DpopBadSignature => "authn.dpop_bad_signature",
            E::DpopHtmMismatch => "authn.dpop_htm_mismatch",
            E::DpopHtuMismatch => "authn.dpop_htu_mismatch",
            E::DpopIatOutOfWindow => "authn.dpop_iat_window",
            E::DpopAthMismatch => "authn.dpop_ath_mismatch",
            E::DpopCnfMismatch => "authn.dpop_cnf_mismatch",
            E::DpopReplayed => "authn.dpop_replayed",
            E::DpopNonce => "authn.dpop_nonce",
            E::ReplayCacheUnavailable => "authn.replay_cache_unavailable",
            E::ApiKeyMultiple => "authn.api_key_multiple",
            E::ApiKeyMalformed => "authn.api_key_malformed",
            E::ApiKeyUnknown => "authn.api_key_unknown",
            E::ApiKeyMismatch => "authn.api_key_mismatch",
            E::ApiKeyRevoked => "authn.api_key_revoked",
            E::ApiKeyExpired => "authn.api_key_expired",
            E::ApiKeyRotated => "authn.api_key_rotated",
            E::ApiKeyStoreUnavailable => "authn.api_key_store_unavailable",
            E::Revoked(super::revocation::RevocationKind::Jti) => "authn.revoked_jti",
            E::Revoked(super::revocation::RevocationKind::Sub) => "authn.revoked_sub",
            E::Revoked(super::revocation::RevocationKind::ClientId) => "authn.revoked_client_id",
            E::RevocationUnavailable => "authn.revocation_unavailable",
            E::ApiKeyBanned => "authn.api_key_banned",
        }
    }

    /// The `WWW-Authenticate` value for this failure under `scheme`.
    /// DPoP-proof errors always challenge with `DPoP`, whatever `scheme`.
    pub fn www_authenticate(&self, scheme: Scheme) -> HeaderValue {
        let class = self.class();
        let scheme = match class {
            ErrorClass::InvalidDpopProof | ErrorClass::UseDpopNonce => Scheme::Dpop,
            _ => scheme,
        };
        www_authenticate(scheme, class, None)
    }
}

/// Builds a challenge: `Bearer realm="rampart", error="invalid_token",
/// error_description="…"`, or for DPoP `DPoP algs="ES256 …", error=…`.
/// Only fixed text goes in; nothing from the request is echoed.
pub fn www_authenticate(scheme: Scheme, class: ErrorClass, dpop_algs: Option<&str>) -> HeaderValue {
    let mut out = String::with_capacity(128);
    match scheme {
        Scheme::Bearer => out.push_str("Bearer realm=\"rampart\""),
        Scheme::Dpop => {
            out.push_str("DPoP algs=\"");
            out.push_str(dpop_algs.unwrap_or("PS256 ES256 EdDSA"));
            out.push('"');
        }
    }
    if let (Some(code), Some(desc)) = (class.code(), class.description()) {
        out.push_str(", error=\"");
        out.push_str(code);
        out.push_str("\", error_description=\"");
        out.push_str(desc);
        out.push('"');
    }
    // Only fixed ASCII above, and `dpop_algs` comes from the validated
    // policy; fall back to the bare scheme if that ever stops being true.
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"rampart\""))
}
