//! Graceful shutdown: in-flight requests finish, new connections are not
//! accepted.

use std::time::Duration;

use rampart_testkit::Harness;

use crate::ROUTES;

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let mut h = Harness::start(&ROUTES.replace("timeout = \"500ms\"", "timeout = \"5s\"")).await;
    let c = h.client();
    let in_flight = tokio::spawn(async move { c.get("/delay/800").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.upstream.count(), 1, "the slow request is in flight");
    let addr = h.addr();
    let readyz = h.admin_url("/readyz");
    let late = h.client();
    let server = h.server.take().unwrap();
    let draining = tokio::spawn(server.shutdown(Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // While draining, the admin listener tells load balancers to go away.
    let r = rampart_testkit::admin_request(http::Method::GET, &readyz, None).await;
    assert_eq!(r.status, 503);
    // New connections are no longer accepted.
    assert!(late
        .try_send(http::Method::GET, "/v1/accounts", &[], "")
        .await
        .is_err());
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200, "in-flight request was cut: {}", r.text());
    draining.await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
