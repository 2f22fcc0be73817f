//! Every kind of bad input gets its status, and nothing reaches Kafka; with no
//! producer reachable the gateway is not ready and answers 503 + Retry-After.

use std::time::Duration;

use testkit::free_port;
use testkit::pipeline::{Pipeline, PipelineOptions, http_get};

fn post(url: &str, body: Vec<u8>) -> anyhow::Result<(u16, Option<String>, serde_json::Value)> {
    let response = reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.json().unwrap_or(serde_json::Value::Null);
    Ok((status, retry_after, body))
}

#[test]
fn bad_input_gets_its_status_and_never_reaches_kafka() -> anyhow::Result<()> {
    let pipeline = Pipeline::start(PipelineOptions {
        consumers: 0,
        ..PipelineOptions::default()
    })?;
    let base = pipeline.gateway_url()?;
    let one = format!("{base}/venta");
    let many = format!("{base}/ventas");
    let valid = r#"{"categoria": 1, "producto_id": "tv", "precio": 10.5, "cantidad_vendida": 1}"#;

    let malformed = [
        ("{\"categoria\": 1,", &one),
        ("not json", &one),
        ("[{\"categoria\"", &many),
    ];
    for (body, url) in malformed {
        let (status, _, json) = post(url, body.into())?;
        assert_eq!(status, 400, "{body}: {json}");
        assert!(
            json["error"]
                .as_str()
                .unwrap_or("")
                .contains("malformed JSON"),
            "{json}"
        );
    }

    let invalid = [
        (
            r#"{"categoria": 1, "producto_id": "tv", "precio": 0, "cantidad_vendida": 1}"#,
            "precio",
        ),
        (
            r#"{"categoria": 1, "producto_id": "tv", "precio": -3, "cantidad_vendida": 1}"#,
            "precio",
        ),
        (
            r#"{"categoria": 1, "producto_id": "tv", "precio": "NaN", "cantidad_vendida": 1}"#,
            "precio",
        ),
        (
            r#"{"categoria": 1, "producto_id": "tv", "precio": 1, "cantidad_vendida": 0}"#,
            "cantidad_vendida",
        ),
        (
            r#"{"categoria": 1, "producto_id": "tv", "precio": 1, "cantidad_vendida": 10001}"#,
            "cantidad_vendida",
        ),
        (
            r#"{"categoria": 1, "producto_id": "", "precio": 1, "cantidad_vendida": 1}"#,
            "producto_id",
        ),
        (
            r#"{"categoria": 7, "producto_id": "tv", "precio": 1, "cantidad_vendida": 1}"#,
            "categoria",
        ),
        (
            r#"{"categoria": "Juguetes", "producto_id": "tv", "precio": 1, "cantidad_vendida": 1}"#,
            "categoria",
        ),
        (
            r#"{"producto_id": "tv", "precio": 1, "cantidad_vendida": 1}"#,
            "categoria",
        ),
    ];
    for (body, field) in invalid {
        let (status, _, json) = post(&one, body.into())?;
        assert_eq!(status, 422, "{body}: {json}");
        assert_eq!(json["field"], field, "{body}: {json}");
    }
    let long_id = format!(
        r#"{{"categoria": 1, "producto_id": "{}", "precio": 1, "cantidad_vendida": 1}}"#,
        "x".repeat(200)
    );
    let (status, _, json) = post(&one, long_id.into())?;
    assert_eq!((status, json["field"].as_str()), (422, Some("producto_id")));

    // One bad sale in a batch rejects the whole batch, naming its index.
    let batch = format!(
        "[{valid}, {}]",
        r#"{"categoria": 1, "producto_id": "tv", "precio": 1, "cantidad_vendida": -1}"#
    );
    let (status, _, json) = post(&many, batch.into())?;
    assert_eq!(
        (status, json["field"].as_str()),
        (422, Some("ventas[1].cantidad_vendida"))
    );
    let too_many = format!("[{}]", vec![valid; 1001].join(","));
    let (status, _, json) = post(&many, too_many.into())?;
    assert_eq!((status, json["field"].as_str()), (422, Some("ventas")));

    // Over the body limit (1 MiB by default).
    let (status, _, _) = post(&one, vec![b' '; 2 * 1024 * 1024])?;
    assert_eq!(status, 413);

    assert_eq!(
        pipeline.broker.record_count("ventas")?,
        0,
        "no rejected sale may reach Kafka"
    );

    // And a valid one does get through, so the checks above were not vacuous.
    let (status, _, json) = post(&one, valid.into())?;
    assert_eq!(status, 202, "{json}");
    assert!(
        json["venta_id"].as_str().is_some_and(|id| id.len() == 36),
        "{json}"
    );
    assert_eq!(pipeline.broker.record_count("ventas")?, 1);
    Ok(())
}

#[test]
fn without_a_reachable_producer_the_gateway_is_not_ready_and_answers_503() -> anyhow::Result<()> {
    let pipeline = Pipeline::start(PipelineOptions {
        producers: 1,
        consumers: 0,
        start_gateway: false,
        ..PipelineOptions::default()
    })?;
    // Nothing listens on this port.
    let gateway = pipeline.start_gateway_with(&format!("127.0.0.1:{}", free_port()), &[])?;
    std::thread::sleep(Duration::from_millis(800));
    let (status, body) = http_get(gateway.port, "/readyz")?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        http_get(gateway.port, "/healthz")?.0,
        200,
        "alive though not ready"
    );

    let url = format!("http://127.0.0.1:{}/venta", gateway.port);
    let valid =
        r#"{"categoria": "Ropa", "producto_id": "jeans", "precio": 20, "cantidad_vendida": 2}"#;
    let (status, retry_after, json) = post(&url, valid.into())?;
    assert_eq!(status, 503, "{json}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(pipeline.broker.record_count("ventas")?, 0);

    // A gateway that does reach the producer is ready: the 503 was about reachability.
    let reachable =
        pipeline.start_gateway_with(&format!("127.0.0.1:{}", pipeline.producers[0].port), &[])?;
    testkit::wait_for(
        "the second gateway to be ready",
        Duration::from_secs(20),
        || {
            Ok((http_get(reachable.port, "/readyz")
                .map_err(|e| e.to_string())?
                .0
                == 200)
                .then_some(()))
        },
    )?;
    Ok(())
}
