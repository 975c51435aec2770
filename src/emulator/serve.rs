//! Accepting connections for the emulator's listeners: each connection runs
//! in its own task, ends when the emulator shuts down, and can be killed
//! from inside a request (fault injection drops it without an answer).

use axum::Router;
use axum::body::Body;
use futures::future::BoxFuture;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Drops the connection it was handed with, from inside a request.
#[derive(Clone, Default)]
pub struct ConnectionKill(Arc<Notify>);

impl ConnectionKill {
    pub fn fire(&self) {
        self.0.notify_one();
    }

    async fn fired(&self) {
        self.0.notified().await;
    }
}

/// How long a connection may stay silent (an HTTP request head, a TDS
/// message) before the door closes it.
pub const IDLE: std::time::Duration = std::time::Duration::from_secs(300);

/// Connections one door serves at once; more are closed at once. A laptop
/// tool, but a hostile client must not exhaust it.
pub const MAX_CONNECTIONS: usize = 512;

pub async fn accept_loop<F, Fut>(listener: TcpListener, shutdown: CancellationToken, handle: F)
where
    F: Fn(TcpStream, ConnectionKill) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!("more than {MAX_CONNECTIONS} connections at once: one closed");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let kill = ConnectionKill::default();
        let connection = handle(stream, kill.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                () = connection => {}
                () = kill.fired() => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}

/// Whether a request path, percent-decoded (any number of times), has a
/// `.` or `..` segment, or a backslash.
fn outside_the_bucket(path: &str) -> bool {
    let mut decoded = path.to_owned();
    for _ in 0..4 {
        let next = percent_encoding::percent_decode_str(&decoded)
            .decode_utf8_lossy()
            .into_owned();
        if next == decoded {
            break;
        }
        decoded = next;
    }
    decoded.contains('\\') || decoded.split('/').any(|s| s == "." || s == "..")
}

/// What every HTTP listener of the emulator runs per request. One type for
/// all of them, so hyper's server (HTTP/1, HTTP/2 and the choice between
/// them) is compiled once instead of once per service. An error drops the
/// connection, as hyper does with any service's error; it is an `io::Error`
/// because a boxed `dyn Error` here trips rustc's check that the connection
/// task is `Send` for every lifetime.
type Handler = Arc<
    dyn Fn(
            hyper::Request<hyper::body::Incoming>,
            ConnectionKill,
        ) -> BoxFuture<'static, Result<hyper::Response<Body>, std::io::Error>>
        + Send
        + Sync,
>;

async fn serve_http(listener: TcpListener, handler: Handler, shutdown: CancellationToken) {
    accept_loop(listener, shutdown, move |stream, kill| {
        let handler = Arc::clone(&handler);
        let service = hyper::service::service_fn(move |request| handler(request, kill.clone()));
        async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // A client that sends no (whole) request head for this long is
            // closed: idle connections are not kept for ever.
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(IDLE);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
}

/// Serves an axum router; every request carries its connection's kill switch.
pub async fn serve_router(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let handler: Handler = Arc::new(move |mut request, kill| {
        request.extensions_mut().insert(kill);
        let response = router.clone().oneshot(request);
        Box::pin(async move {
            let Ok(response) = response.await;
            Ok(response)
        })
    });
    serve_http(listener, handler, shutdown).await;
}

/// Serves the S3 service.
pub async fn serve_s3(
    listener: TcpListener,
    service: s3s::service::S3Service,
    shutdown: CancellationToken,
) {
    let handler: Handler = Arc::new(move |request, _| {
        let service = service.clone();
        Box::pin(async move {
            // Keys stay inside their bucket: a `..` segment, however it is
            // escaped, would reach the folder beside the bucket's.
            if outside_the_bucket(request.uri().path()) {
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InvalidArgument</Code>\
                            <Message>a key with a `.` or `..` segment is refused</Message></Error>";
                return Ok(hyper::Response::builder()
                    .status(400)
                    .header("content-type", "application/xml")
                    .body(Body::from(body))
                    .expect("a valid response"));
            }
            let response = hyper::service::Service::call(&service, request)
                .await
                .map_err(|e| std::io::Error::other(s3s::StdError::from(e)))?;
            Ok(response.map(Body::new))
        })
    });
    serve_http(listener, handler, shutdown).await;
}
