//! Every error is counted once, whoever answered it (`siwa_server`'s error middleware). In a
//! test binary of its own, with one test: the metrics recorder is the process's, and other
//! tests' refusals would be counted in it too.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_counted_once() {
    let h = Harness::start_web(Db::Sqlite).await.unwrap();
    every_refusal_is_counted_once_whoever_answers_it(h).await;
}

/// Errors are counted by one middleware, whatever answered them: the JSON API, axum itself
/// (405), the page (an HTML error), or a redirect back to a native app.
async fn every_refusal_is_counted_once_whoever_answers_it(h: Harness) {
    let api = h.http.get(h.url("/v1/no-such-route")).send().await.unwrap();
    assert_eq!(api.status(), 404);
    let axum = h.http.get(h.url("/v1/auth/refresh")).send().await.unwrap();
    assert_eq!(axum.status(), 405);
    let page = browser()
        .post(h.url("/v1/web/callback"))
        .form(&[("state", "unknown"), ("code", "c"), ("id_token", "t")])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400);
    assert!(page.text().await.unwrap().contains("invalid_state"));
    let start =
        "/v1/web/sign-in?app_redirect_uri=com.example.app%3A%2F%2Fsigned-in&code_challenge=short";
    let app_start = h.http.get(h.url(start)).send().await.unwrap();
    assert_eq!(app_start.status(), 400);
    let metrics = h.metrics().await;
    for code in [
        "not_found",
        "method_not_allowed",
        "invalid_state",
        "invalid_code_challenge",
    ] {
        let line = format!("siwa_api_errors_total{{code=\"{code}\"}} 1\n");
        assert!(
            metrics.contains(&line),
            "{code} is not counted once:\n{metrics}"
        );
    }
}
