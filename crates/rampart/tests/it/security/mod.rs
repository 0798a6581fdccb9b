//! One file per threat.

mod header_spoofing;
mod ip_filter;
mod path_traversal;
mod request_smuggling;
