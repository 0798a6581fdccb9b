//! One file per threat.

mod api_keys;
mod authn;
mod header_spoofing;
mod ip_filter;
mod path_traversal;
mod request_smuggling;
mod revocation;
