//! One file per threat.

mod api_keys;
mod authn;
mod bola;
mod client_certificates;
mod header_spoofing;
mod injection;
mod introspection;
mod ip_filter;
mod jwks;
mod path_traversal;
mod request_smuggling;
mod revocation;
mod signatures;
mod totp;
