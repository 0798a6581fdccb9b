//! Every way the gateway refuses a request, and what the client sees of it.
//!
//! `Reject` is one exhaustive enum: a new variant does not compile until
//! [`Reject::class`] says its status, stable code and title. Only
//! [`respond`](crate::respond) turns a `Reject` into a response (RFC 9457
//! problem details). The detailed cause (`Display` of the inner error) goes
//! to the debug log (and, with the audit capability, the audit trail), never
//! to the client: the gateway is not an
//! oracle.

use http::{Method, StatusCode};

use crate::route::path::PathError;
use crate::upstream::UpstreamError;

/// A refusal.
#[derive(Debug, thiserror::Error)]
pub enum Reject {
    /// The path is malformed or tries to escape its route (`..`, `%2F`).
    #[error("malformed path: {0}")]
    BadPath(#[source] PathError),
    /// The request target is longer than the listener allows.
    #[error("request target too long")]
    UriTooLong,
    /// The request headers are larger than the listener allows.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// The request names its host ambiguously: several `Host` headers, a
    /// `Host` that differs from the request target's or `:authority`'s
    /// authority, or characters no host name has.
    #[error("ambiguous or malformed host")]
    BadHost,
    /// A GET, HEAD or TRACE request with a body: its meaning is undefined
    /// and backends disagree on it (a classic desync).
    #[error("body on a method that takes none")]
    BodyNotAllowed,
    /// The client's address is not allowed on this route.
    #[error("address refused: {0}")]
    IpDenied(#[source] crate::ip_filter::IpFilterError),
    /// No acceptable credential: missing, invalid, or not bound to this
    /// sender. The cause is for logs; the client sees the RFC 6750 class.
    #[error("authentication failed: {} ({})", .0.error.cause(), .0.error)]
    Unauthenticated(crate::authn::gate::AuthnRefusal),
    /// Authorization refused: a missing scope or role, an object that is
    /// not the caller's, a step-up or a confirmation needed. The cause is
    /// for logs; the client sees the class.
    #[error("authorization refused: {} ({})", .0.error.cause(), .0.error)]
    Forbidden(crate::authz::AuthzRefusal),
    /// The JSON body the gateway had to read is malformed, duplicates a
    /// key or exceeds a structure limit.
    #[error("invalid JSON body: {0}")]
    InvalidJson(#[source] crate::body::json::JsonError),
    /// A rate limit of the route refused the request.
    #[error("rate limited by `{}`", .0.limit)]
    RateLimited(crate::rate_limit::RateLimited),
    /// Too many requests in flight (gateway, route or upstream).
    #[error("overloaded: {0}")]
    Overloaded(&'static str),
    /// An idempotent route was called without `Idempotency-Key`.
    #[error("missing idempotency key")]
    IdempotencyKeyRequired,
    /// The key was used before for a different request.
    #[error("idempotency key reused for a different request")]
    IdempotencyKeyReused,
    /// The key's first request is still in flight.
    #[error("idempotency key in flight")]
    IdempotencyConflict,
    /// The request body is larger than the route allows.
    #[error("request body too large")]
    BodyTooLarge,
    /// The request body could not be read to its end (the client broke
    /// off or sent malformed framing).
    #[error("request body unreadable")]
    BodyUnreadable,
    /// No route declares this path (for this host).
    #[error("no route for this path")]
    NoRoute,
    /// A route declares this path, but not this method.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// Methods the matching routes declare.
        allow: Vec<Method>,
    },
    /// The upstream could not be reached or did not answer in time.
    #[error("upstream failure: {0}")]
    Upstream(#[source] UpstreamError),
    /// The request does not conform to what the API declares, carries an
    /// injection, or its message signature was refused.
    #[error("validation: {0}")]
    Invalid(#[source] crate::validate::ValidateError),
}

/// What a client sees of a class of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemClass {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code: the last segment of the problem `type` URI, and the
    /// `outcome` in logs and metrics.
    pub code: &'static str,
    /// Short, fixed, human-readable summary.
    pub title: &'static str,
}

impl Reject {
    /// The JSON pointer (RFC 6901) of the offending field, for refusals of
    /// a body: where, never what.
    pub fn pointer(&self) -> Option<&str> {
        match self {
            Reject::InvalidJson(e) => Some(&e.pointer),
            Reject::Invalid(e) => e.pointer(),
            _ => None,
        }
    }

    /// The class of this refusal. Exhaustive by design.
    pub fn class(&self) -> ProblemClass {
        use StatusCode as S;
        let (status, code, title) =
            match self {
                Reject::BadPath(_) => (S::BAD_REQUEST, "invalid-path", "The request path is not valid"),
                Reject::UriTooLong => (S::URI_TOO_LONG, "uri-too-long", "The request target is too long"),
                Reject::HeadersTooLarge => (
                    S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "headers-too-large",
                    "The request headers are too large",
                ),
                Reject::BadHost => (S::BAD_REQUEST, "invalid-host", "The request host is not valid"),
                Reject::BodyNotAllowed => (
                    S::BAD_REQUEST,
                    "body-not-allowed",
                    "This method does not take a request body",
                ),
                Reject::IpDenied(_) => (
                    S::FORBIDDEN,
                    "ip-denied",
                    "Access from this network is not allowed",
                ),
                Reject::Unauthenticated(r) => match r.error.class() {
                    crate::authn::ErrorClass::InvalidRequest => (
                        S::BAD_REQUEST,
                        "invalid-request",
                        "The request's credentials are malformed",
                    ),
                    crate::authn::ErrorClass::NoCredentials => {
                        (S::UNAUTHORIZED, "unauthenticated", "Authentication is required")
                    }
                    crate::authn::ErrorClass::InvalidDpopProof | crate::authn::ErrorClass::UseDpopNonce => (
                        S::UNAUTHORIZED,
                        "invalid-dpop-proof",
                        "The DPoP proof is not valid",
                    ),
                    _ => (S::UNAUTHORIZED, "invalid-token", "The access token is not valid"),
                },
                Reject::Forbidden(r) => {
                    use crate::authz::AuthzClass as A;
                    match r.error.class() {
                    A::InsufficientScope => (
                        S::FORBIDDEN,
                        "insufficient-scope",
                        "The access token does not grant this operation",
                    ),
                    A::Forbidden => (S::FORBIDDEN, "forbidden", "Access to this resource is not allowed"),
                    A::AmbiguousParameter => (
                        S::BAD_REQUEST,
                        "ambiguous-parameter",
                        "A parameter is repeated or cannot be decoded",
                    ),
                    A::Unavailable => (
                        S::SERVICE_UNAVAILABLE,
                        "authorization-unavailable",
                        "Authorization cannot be decided right now; try again shortly",
                    ),
                    A::StepUp => (
                        S::UNAUTHORIZED,
                        "step-up-required",
                        "A stronger or more recent authentication is required",
                    ),
                    A::AuthorizationDetails => (
                        S::FORBIDDEN,
                        "insufficient-authorization-details",
                        "The request is not covered by the authorization details the customer consented to",
                    ),
                    A::ConfirmationRequired => (
                        S::FORBIDDEN,
                        "confirmation-required",
                        "This operation must be confirmed with a one-time code",
                    ),
                    A::ConfirmationFailed => (
                        S::FORBIDDEN,
                        "confirmation-failed",
                        "The one-time code was not accepted",
                    ),
                    A::ConfirmationLocked => (
                        S::TOO_MANY_REQUESTS,
                        "confirmation-locked",
                        "Too many failed confirmations; try again later",
                    ),
                }
                }
                Reject::InvalidJson(_) => (
                    S::BAD_REQUEST,
                    "invalid-json",
                    "The request body is not valid JSON",
                ),
                Reject::RateLimited(_) => (S::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
                Reject::Overloaded(_) => (
                    S::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "The service is busy; try again shortly",
                ),
                Reject::IdempotencyKeyRequired => (
                    S::BAD_REQUEST,
                    "idempotency-key-required",
                    "This endpoint requires an Idempotency-Key header",
                ),
                Reject::IdempotencyKeyReused => (
                    S::UNPROCESSABLE_ENTITY,
                    "idempotency-key-reused",
                    "The Idempotency-Key was used for a different request",
                ),
                Reject::IdempotencyConflict => (
                    S::CONFLICT,
                    "idempotency-conflict",
                    "A request with this Idempotency-Key is still being processed",
                ),
                Reject::BodyTooLarge => (
                    S::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "The request body is too large",
                ),
                Reject::BodyUnreadable => (
                    S::BAD_REQUEST,
                    "body-unreadable",
                    "The request body could not be read",
                ),
                Reject::NoRoute => (S::NOT_FOUND, "not-found", "No such endpoint"),
                Reject::MethodNotAllowed { .. } => (
                    S::METHOD_NOT_ALLOWED,
                    "method-not-allowed",
                    "The method is not allowed for this endpoint",
                ),
                Reject::Upstream(e) if e.is_timeout() => (
                    S::GATEWAY_TIMEOUT,
                    "upstream-timeout",
                    "The service did not answer in time",
                ),
                Reject::Upstream(_) => (
                    S::BAD_GATEWAY,
                    "upstream-unavailable",
                    "The service is unavailable",
                ),
                Reject::Invalid(e) => {
                    use crate::validate::signature::SigError;
                    use crate::validate::ValidateError as V;
                    match e {
                        V::InvalidHeader { .. } => (
                            S::BAD_REQUEST,
                            "invalid-header",
                            "A request header value is not valid",
                        ),
                        V::UnsupportedMediaType => (
                            S::UNSUPPORTED_MEDIA_TYPE,
                            "unsupported-media-type",
                            "The request body's media type is not accepted",
                        ),
                        V::InvalidParameter { .. } => (
                            S::BAD_REQUEST,
                            "invalid-parameter",
                            "A request parameter is missing or not valid",
                        ),
                        V::Json(_) => (
                            S::BAD_REQUEST,
                            "invalid-json",
                            "The request body is not valid JSON",
                        ),
                        V::SchemaViolation { .. } => (
                            S::UNPROCESSABLE_ENTITY,
                            "schema-violation",
                            "The request body does not match the API's schema",
                        ),
                        V::Injection { .. } => (
                            S::BAD_REQUEST,
                            "injection-detected",
                            "The request contains a value that is not accepted",
                        ),
                        V::Signature(SigError::Digest(_)) => (
                            S::BAD_REQUEST,
                            "invalid-digest",
                            "The request body does not match its Content-Digest",
                        ),
                        V::Signature(SigError::StoreDown(_)) => (
                            S::SERVICE_UNAVAILABLE,
                            "overloaded",
                            "The service is busy; try again shortly",
                        ),
                        V::Signature(_) => (
                            S::UNAUTHORIZED,
                            "invalid-signature",
                            "The request's message signature is missing or not valid",
                        ),
                    }
                }
            };
        ProblemClass { status, code, title }
    }
}
