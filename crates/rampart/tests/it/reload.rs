//! Hot reload: a valid policy is swapped in atomically, an invalid one is
//! refused with every problem and the running policy stays, and no request
//! is lost while reloads happen under load.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use rampart_testkit::{admin_request, base_policy, Harness, ADMIN_TOKEN};

use crate::ROUTES;

fn policy_with_extra_route(h: &Harness, id: &str, path: &str) -> String {
    format!(
        "{}\n{ROUTES}\n[[routes]]\nid = \"{id}\"\npath = \"{path}\"\nmethods = [\"GET\"]\nupstream = \"backend\"\nauthn = \"none\"\n",
        base_policy(&h.upstream.url())
    )
}

async fn reload(h: &Harness) -> rampart_testkit::TestResponse {
    admin_request(Method::POST, &h.admin_url("/admin/reload"), Some(ADMIN_TOKEN)).await
}

#[tokio::test]
async fn a_valid_reload_changes_the_routes() {
    let h = Harness::start(ROUTES).await;
    assert_eq!(h.client().get("/v2/cards").await.status, 404);
    h.write_policy(&policy_with_extra_route(&h, "cards", "/v2/cards"));
    let r = reload(&h).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(h.client().get("/v2/cards").await.status, 200);
    let m = h.metrics().await;
    assert!(m.contains(r#"rampart_reloads_total{result="success"} 1"#), "{m}");
    assert!(m.contains("rampart_policy_generation 2"));
}

#[tokio::test]
async fn an_invalid_reload_is_refused_with_every_problem_and_the_old_policy_stays() {
    let h = Harness::start(ROUTES).await;
    let broken = format!(
        "{}\n[[routes]]\nid = \"a\"\npath = \"/a\"\nmethods = [\"GET\"]\nupstream = \"nowhere\"\nauthn = \"none\"\n\n[[routes]]\nid = \"b\"\npath = \"/b\"\nmethods = [\"GET\"]\nupstream = \"backend\"\n",
        base_policy(&h.upstream.url())
    );
    h.write_policy(&broken);
    let r = reload(&h).await;
    assert_eq!(r.status, 422);
    let body = r.json();
    let problems = body["problems"].as_array().unwrap();
    let paths: Vec<_> = problems
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    assert!(paths.contains(&"routes[0].upstream".to_string()), "{paths:?}");
    assert!(paths.contains(&"routes[1].authn".to_string()), "{paths:?}");
    assert!(problems.iter().all(|p| p["line"].as_u64().is_some()));
    // The running policy still serves.
    assert_eq!(h.client().get("/v1/accounts").await.status, 200);
    let m = h.metrics().await;
    assert!(m.contains(r#"rampart_reloads_total{result="failure"} 1"#));
    assert!(m.contains("rampart_policy_generation 1"));
}

#[tokio::test]
async fn listener_address_changes_need_a_restart() {
    let h = Harness::start(ROUTES).await;
    let moved =
        format!("{}\n{ROUTES}", base_policy(&h.upstream.url())).replacen("127.0.0.1:0", "127.0.0.1:1", 1);
    h.write_policy(&moved);
    let r = reload(&h).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("needs a restart"), "{}", r.text());
}

#[tokio::test]
async fn reloads_under_continuous_load_lose_no_request() {
    let h = Harness::start(ROUTES).await;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for i in 0..8 {
        let c = if i % 2 == 0 { h.client() } else { h.client_h2() };
        let (stop, ok) = (stop.clone(), ok.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match c.try_send(Method::GET, "/v1/accounts", &[], "").await {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("status {}", r.status)),
                    Err(e) => failures.push(format!("error {e:?}")),
                }
            }
            failures
        }));
    }
    // Ten reloads, alternating between two valid policies.
    for n in 0..10 {
        let path = if n % 2 == 0 { "/v2/a" } else { "/v2/b" };
        h.write_policy(&policy_with_extra_route(&h, "extra", path));
        let r = reload(&h).await;
        assert_eq!(r.status, 200, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failures, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        ok.load(Ordering::Relaxed) > 50,
        "too little load: {}",
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(h.upstream.count(), ok.load(Ordering::Relaxed));
}
