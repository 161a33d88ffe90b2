//! Everything acknowledged is durable: the real binary is killed with SIGKILL after events were
//! seen on the live stream, and restarted on the same data dir.

use crate::common;
use common::*;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dcim-server")
}

async fn wait_http(client: &reqwest::Client, http: u16) {
    eventually("server up", || async {
        client
            .get(format!("http://127.0.0.1:{http}/health"))
            .send()
            .await
            .is_ok()
    })
    .await;
}

#[tokio::test]
async fn events_seen_on_the_live_stream_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (hport, mqtt) = (free_port(), free_port());
    let cfg = write_config(dir.path(), hport, mqtt);
    // A user and a token, with the CLI.
    let token = cli_admin_token(Path::new(bin()), &cfg, "test");

    let client = http();
    let mut child = spawn(&cfg);
    wait_http(&client, hport).await;

    // Live stream first, then publish.
    let resp = client
        .get(format!("http://127.0.0.1:{hport}/api/stream"))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (c, mut el, r) = mqtt_agent("127.0.0.1", mqtt, "a1", "a1-secret").await;
    r.unwrap();
    for batch in 0..10u64 {
        let first = batch * 10 + 1;
        c.publish(
            "dcim/v1/s1/a1/events",
            rumqttc::QoS::AtLeastOnce,
            false,
            events("a1", "rack-1", first..=first + 9),
        )
        .await
        .unwrap();
    }
    let pump = tokio::spawn(async move { while el.poll().await.is_ok() {} });

    // Read the stream until 60 events were announced, then kill -9 at once.
    let stream = futures_util::TryStreamExt::map_err(resp.bytes_stream(), std::io::Error::other);
    let mut lines = tokio_util_lines(stream);
    let mut seen = Vec::new();
    let mut is_event = false;
    while seen.len() < 60 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("live stream stalled")
            .unwrap()
            .expect("live stream ended");
        if line == "event: event" {
            is_event = true;
        } else if let Some(data) = line.strip_prefix("data: ")
            && is_event
        {
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            seen.push(v["seq"].as_i64().unwrap());
            is_event = false;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    pump.abort();

    let mut child = spawn(&cfg);
    wait_http(&client, hport).await;
    let ev = get_json(
        &client,
        &format!("http://127.0.0.1:{hport}/api/events?limit=1000"),
        &token,
    )
    .await;
    let stored: Vec<i64> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    for s in &seen {
        assert!(
            stored.contains(s),
            "event {s} was announced but is not stored after SIGKILL"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Lines of a byte stream.
fn tokio_util_lines(
    stream: impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin + Send + 'static,
) -> tokio::io::Lines<tokio::io::BufReader<impl tokio::io::AsyncRead>> {
    tokio::io::BufReader::new(StreamReader {
        inner: stream,
        buf: bytes::Bytes::new(),
    })
    .lines()
}

struct StreamReader<S> {
    inner: S,
    buf: bytes::Bytes,
}

impl<S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin> tokio::io::AsyncRead
    for StreamReader<S>
{
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        loop {
            if !self.buf.is_empty() {
                let n = self.buf.len().min(out.remaining());
                out.put_slice(&self.buf.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match futures_util::Stream::poll_next(std::pin::Pin::new(&mut self.inner), cx) {
                Poll::Ready(Some(Ok(b))) => self.buf = b,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
