//! One file per threat.

mod header_spoofing;
mod path_traversal;
mod request_smuggling;
