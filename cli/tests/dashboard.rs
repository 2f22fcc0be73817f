//! What people look at, against the real local pipeline (tansu,
//! valkey-server, the three services on 127.0.0.1):
//!
//! - the live page `up --local` serves, loaded in headless Chromium (Debian's
//!   `chromium`, installed by `.ci/install-deps`) while a load test runs:
//!   the numbers it renders are read from the DOM and compared with Valkey
//!   read just before and just after; a screenshot is written to
//!   `target/tmp/dashboard-during-load.png`; the load test's chart goes to
//!   `target/tmp/dashboard-loadtest.svg` and `.png`;
//! - every Grafana panel, after the load test: its command run against the
//!   real Valkey, the reply turned into the frame the Redis data source
//!   plugin builds, the panel's transformations applied, then checked for
//!   what its visualization needs and for the values Valkey holds. A panel
//!   without an entry in [`expected`] fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bfctl::dashboard::frame::{Frame, LAST_NOT_NULL, Values};
use bfctl::dashboard::live::{now_ms, read_panels};
use bfctl::dashboard::panels::Panel;
use redis::Commands;

mod support;
use support::local::{Teardown, bfctl, json, text};
use testkit::free_port;

const CATEGORIES: [&str; 4] = ["Electronica", "Ropa", "Hogar", "Belleza"];

/// Loads `url` in headless Chromium and returns the DOM after its scripts
/// ran (the page polls every second; virtual time lets a few polls run).
fn chromium(args: &[&str], url: &str, profile: &Path) -> std::process::Output {
    let profile = format!("--user-data-dir={}", profile.display());
    let mut all = vec![
        "60",
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--virtual-time-budget=3000",
        &profile,
    ];
    all.extend(args);
    all.push(url);
    Command::new("timeout")
        .args(&all)
        .output()
        .expect("chromium runs: .ci/install-deps installs it (apt package chromium)")
}

/// The value of `attribute` on the element whose `key` attribute is `value`.
fn attribute_of(dom: &str, key_value: &str, attribute: &str) -> Option<String> {
    let at = dom.find(key_value)?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    let tag = &dom[start..end];
    let marker = format!("{attribute}=\"");
    let from = tag.find(&marker)? + marker.len();
    let to = from + tag[from..].find('"')?;
    Some(tag[from..to].to_string())
}

/// Every bar of the panel `id` as (label, value), from the DOM.
fn bars(dom: &str, id: u32) -> Vec<(String, f64)> {
    let start = dom
        .find(&format!("data-panel-id=\"{id}\""))
        .unwrap_or_else(|| panic!("panel {id} not on the page:\n{dom}"));
    let end = dom[start..]
        .find("</section>")
        .map(|e| start + e)
        .unwrap_or(dom.len());
    let section = &dom[start..end];
    section
        .split("class=\"bar\"")
        .skip(1)
        .map(|bar| {
            let pick = |name: &str| {
                let marker = format!("{name}=\"");
                let from = bar.find(&marker).unwrap() + marker.len();
                bar[from..from + bar[from..].find('"').unwrap()].to_string()
            };
            (pick("data-label"), pick("data-value").parse().unwrap())
        })
        .collect()
}

fn sales(valkey: &mut redis::Connection) -> i64 {
    let total: Option<i64> = valkey.hget("bf:stats", "ventas").unwrap();
    total.unwrap_or(0)
}

#[test]
fn the_live_page_and_every_grafana_panel_show_what_valkey_holds() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("local");
    let dir_arg = dir.to_str().unwrap();
    let _teardown = Teardown(&dir);
    let port = free_port().to_string();
    let up = bfctl(&[
        "up",
        "--local",
        "--local-dir",
        dir_arg,
        "--gateway-port",
        &port,
        "--output",
        "json",
    ]);
    assert!(up.status.success(), "{}", text(&up));
    let url = json(&up)["dashboardUrl"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{}", text(&up));
    let state = bfctl::local::LocalState::load(&dir).unwrap().unwrap();
    let mut valkey = state.valkey().unwrap();

    // The load, in the background; its chart kept in target/tmp.
    let chart = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-loadtest.svg");
    let load = Command::new(env!("CARGO_BIN_EXE_bfctl"))
        .args([
            "loadtest",
            "--local-dir",
            dir_arg,
            "--users",
            "5",
            "--duration",
            "25",
            "--output",
            "json",
            "--chart",
        ])
        .arg(&chart)
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // During the load: the page's numbers against Valkey's.
    std::thread::sleep(Duration::from_secs(10));
    let profile = temp.path().join("chromium");
    let before = sales(&mut valkey);
    let page = chromium(&["--dump-dom"], &url, &profile);
    let after = sales(&mut valkey);
    let dom = String::from_utf8_lossy(&page.stdout).to_string();
    assert!(page.status.success(), "{}\n{dom}", text(&page));
    let shown: i64 = attribute_of(&dom, "id=\"sales-total\"", "data-value")
        .unwrap_or_else(|| panic!("no sales total on the page:\n{dom}"))
        .parse()
        .unwrap();
    assert!(before > 0, "nothing counted after 10 s of load");
    assert!(
        before <= shown && shown <= after,
        "the page shows {shown} sales, Valkey had {before} before and {after} after"
    );
    // One atomic read: the bars of "sales per category" add up to the total.
    let per_category = bars(&dom, 1);
    assert_eq!(per_category.len(), 4, "{per_category:?}");
    assert_eq!(
        per_category.iter().map(|(_, v)| *v as i64).sum::<i64>(),
        shown,
        "{per_category:?}"
    );
    let rate: f64 = attribute_of(&dom, "id=\"sales-per-second\"", "data-value")
        .unwrap_or_else(|| panic!("no throughput:\n{dom}"))
        .parse()
        .unwrap();
    assert!(rate > 0.0, "no throughput shown during the load");
    assert!(
        attribute_of(&dom, "id=\"latency-ms\"", "data-value").is_some(),
        "no latency shown during the load:\n{dom}"
    );
    let pending: i64 = attribute_of(&dom, "id=\"pending\"", "data-value")
        .unwrap_or_else(|| panic!("no pending count:\n{dom}"))
        .parse()
        .unwrap();
    assert!(pending >= 0);
    assert!(
        !dom.contains("class=\"problem\""),
        "a panel cannot render during the load:\n{dom}"
    );
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-during-load.png");
    let shot = chromium(
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1500,1300",
            "--hide-scrollbars",
        ],
        &url,
        &profile,
    );
    assert!(shot.status.success(), "{}", text(&shot));
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );

    let load = load.wait_with_output().unwrap();
    assert!(load.status.success(), "{}", text(&load));
    let report = json(&load);
    assert_eq!(report["pipeline"]["lost"], 0, "{report}");
    assert_eq!(report["pipeline"]["duplicated"], 0, "{report}");
    // The chart, as SVG and PNG: axes with units, a legend, the lag.
    let svg = std::fs::read_to_string(&chart).unwrap();
    for label in [
        "requests/s",
        "latency (ms, log scale)",
        "p50 latency",
        "p99 latency",
        "accepted (answered 202)",
        "counted by the pipeline",
        "time since the load started (s)",
    ] {
        assert!(
            svg.contains(label),
            "{label} missing from {}",
            chart.display()
        );
    }
    let png = std::fs::read(chart.with_extension("png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");

    // `status --local` names the page too.
    let status = bfctl(&["status", "--local", "--local-dir", dir_arg]);
    assert!(
        text(&status).contains(&format!("live dashboard: {url}")),
        "{}",
        text(&status)
    );
    // `bfctl dashboard` serves another page, in the foreground; bad input
    // is refused with what to do.
    let mut foreground = Command::new(env!("CARGO_BIN_EXE_bfctl"))
        .args(["dashboard", "--local-dir", dir_arg, "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(foreground.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let served: serde_json::Value = serde_json::from_str(&line).unwrap();
    let snapshot: serde_json::Value =
        reqwest::blocking::get(format!("{}api/snapshot", served["url"].as_str().unwrap()))
            .unwrap()
            .json()
            .unwrap();
    foreground.kill().unwrap();
    foreground.wait().unwrap();
    assert_eq!(
        snapshot["panels"].as_array().map(Vec::len),
        Some(11),
        "{snapshot}"
    );
    assert!(
        snapshot["pipeline"]["salesTotal"].as_i64() > Some(0),
        "{snapshot}"
    );
    let nowhere = bfctl(&["dashboard", "--local-dir", "/nonexistent/bfctl"]);
    assert_eq!(nowhere.status.code(), Some(2), "{}", text(&nowhere));
    assert!(
        text(&nowhere).contains("bfctl up --local"),
        "{}",
        text(&nowhere)
    );
    let open = bfctl(&["dashboard", "--local-dir", dir_arg, "--listen", "0.0.0.0:0"]);
    assert_eq!(open.status.code(), Some(2), "{}", text(&open));
    assert!(text(&open).contains("127.0.0.1 only"), "{}", text(&open));

    // After the load: every panel against the real Valkey.
    let panels = bfctl::dashboard::panels(&state.options.carnet, carnet_category(&state));
    let (views, _, _) = read_panels(&mut valkey, &panels, now_ms()).unwrap();
    for (panel, view) in panels.iter().zip(&views) {
        let checked = panel
            .check(&view.frame)
            .and_then(|()| expected(panel, &view.frame, &mut valkey));
        if let Err(problem) = checked {
            panic!(
                "panel {} \"{}\" ({}): {problem}\nframe: {}",
                panel.id,
                panel.title,
                view.command,
                view.frame.shape()
            );
        }
    }
}

fn carnet_category(state: &bfctl::local::LocalState) -> blackfriday_proto::Category {
    blackfriday_proto::Category::for_carnet(&state.options.carnet).unwrap()
}

fn numbers<'a>(frame: &'a Frame, name: &str) -> Result<&'a [f64], String> {
    match frame.field(name).map(|f| &f.values) {
        Some(Values::Number(values)) => Ok(values),
        other => Err(format!("no number field {name}: {other:?}")),
    }
}

fn strings<'a>(frame: &'a Frame, name: &str) -> Result<&'a [String], String> {
    match frame.field(name).map(|f| &f.values) {
        Some(Values::String(values)) => Ok(values),
        other => Err(format!("no string field {name}: {other:?}")),
    }
}

fn ensure(holds: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if holds { Ok(()) } else { Err(message()) }
}

/// A bar per category, each the category hash's `field`.
fn bars_match(frame: &Frame, valkey: &mut redis::Connection, field: &str) -> Result<(), String> {
    let labels = strings(frame, "Field")?;
    let values = numbers(frame, LAST_NOT_NULL)?;
    ensure(labels.len() == 4, || {
        format!("{} bars, not 4", labels.len())
    })?;
    for category in CATEGORIES {
        let row = labels
            .iter()
            .position(|l| l == category)
            .ok_or(format!("no bar for {category}"))?;
        let held: String = valkey
            .hget(format!("bf:cat:{category}"), field)
            .map_err(|e| e.to_string())?;
        let held: f64 = held.parse().map_err(|_| format!("{held} is no number"))?;
        ensure(values[row] == held, || {
            format!(
                "{category}: bar {} but bf:cat:{category} {field} is {held}",
                values[row]
            )
        })?;
    }
    Ok(())
}

/// The hash's price, product and category, as the stat shows them.
fn extreme_matches(frame: &Frame, valkey: &mut redis::Connection, key: &str) -> Result<(), String> {
    let held: Vec<String> = redis::cmd("HMGET")
        .arg(key)
        .arg("precio")
        .arg("producto")
        .arg("categoria")
        .query(valkey)
        .map_err(|e| e.to_string())?;
    let price: f64 = held[0].parse().map_err(|_| format!("price {}", held[0]))?;
    ensure(numbers(frame, "precio")? == [price], || {
        format!("price {:?}, {key} holds {price}", numbers(frame, "precio"))
    })?;
    ensure(strings(frame, "categoria")? == [held[2].clone()], || {
        format!("category, {key} holds {}", held[2])
    })?;
    // A product id that reads as a number is a number field: as the plugin does.
    let product = frame
        .field("producto")
        .ok_or("no producto field")?
        .values
        .clone();
    let expected = match held[1].parse::<f64>() {
        Ok(number) => Values::Number(vec![number]),
        Err(_) => Values::String(vec![held[1].clone()]),
    };
    ensure(product == expected, || {
        format!("product {product:?}, {key} holds {}", held[1])
    })
}

/// The stat's one field: the ranked member (its name) and its units.
fn ranked_matches(
    frame: &Frame,
    valkey: &mut redis::Connection,
    key: &str,
    best: bool,
) -> Result<(), String> {
    let held: Vec<(String, f64)> = if best {
        valkey.zrevrange_withscores(key, 0, 0)
    } else {
        valkey.zrange_withscores(key, 0, 0)
    }
    .map_err(|e| e.to_string())?;
    let (member, units) = held.first().ok_or(format!("{key} is empty"))?;
    ensure(frame.fields.len() == 1, || {
        format!("{} fields", frame.fields.len())
    })?;
    ensure(numbers(frame, member)? == [*units], || {
        format!(
            "{member}: {:?}, {key} holds {units}",
            numbers(frame, member)
        )
    })
}

/// What each panel must show, read from Valkey another way. Every panel
/// needs an entry: one added without a check fails here.
fn expected(panel: &Panel, frame: &Frame, valkey: &mut redis::Connection) -> Result<(), String> {
    let category: String = valkey
        .hget("bf:carnet", "categoria")
        .map_err(|e| e.to_string())?;
    match panel.id {
        1 => bars_match(frame, valkey, "ventas"),
        2 => bars_match(frame, valkey, "precio_promedio"),
        3 => bars_match(frame, valkey, "cantidad_promedio"),
        4 => extreme_matches(frame, valkey, "bf:precio:max"),
        5 => extreme_matches(frame, valkey, "bf:precio:min"),
        6 => ranked_matches(frame, valkey, "bf:productos:unidades", true),
        7 => ranked_matches(frame, valkey, "bf:productos:unidades", false),
        8 => ranked_matches(
            frame,
            valkey,
            &format!("bf:cat:{category}:productos:unidades"),
            true,
        ),
        9 => ranked_matches(
            frame,
            valkey,
            &format!("bf:cat:{category}:productos:unidades"),
            false,
        ),
        10 => {
            // Every point of the series (all from the last minute), in order.
            let series = testkit::pipeline::carnet_series(valkey).map_err(|e| e.to_string())?;
            testkit::pipeline::check_carnet_series(&series, 1000).map_err(|e| e.to_string())?;
            let times: Vec<i64> = series.iter().map(|p| p.time_ms).collect();
            let prices: Vec<f64> = series.iter().map(|p| p.precio.parse().unwrap()).collect();
            ensure(
                frame.field("$time").map(|f| &f.values) == Some(&Values::Time(times)),
                || "times differ from the stream's".into(),
            )?;
            ensure(numbers(frame, "precio")? == prices.as_slice(), || {
                "prices differ from the stream's".into()
            })?;
            ensure(frame.fields.len() == 2, || {
                "only $time and precio are drawn".into()
            })
        }
        11 => {
            // Every batch of the last minutes: their sales add up to the total.
            let total: i64 = valkey
                .hget("bf:stats", "ventas")
                .map_err(|e| e.to_string())?;
            let applied: f64 = numbers(frame, "ventas")?.iter().sum();
            ensure(applied as i64 == total, || {
                format!("batches add up to {applied}, bf:stats ventas is {total}")
            })?;
            numbers(frame, "latencia_max_ms")?;
            ensure(frame.fields.len() == 3, || {
                "$time, ventas, latencia_max_ms".into()
            })
        }
        id => Err(format!(
            "panel {id} has no check in cli/tests/dashboard.rs: add what it must show"
        )),
    }
}
