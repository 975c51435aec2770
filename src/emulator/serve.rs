//! Accepting connections for the emulator's listeners: each connection runs
//! in its own task, ends when the emulator shuts down, and can be killed
//! from inside a request (fault injection drops it without an answer).

use axum::Router;
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

pub async fn accept_loop<F, Fut>(listener: TcpListener, shutdown: CancellationToken, handle: F)
where
    F: Fn(TcpStream, ConnectionKill) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
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
        let _ = stream.set_nodelay(true);
        let kill = ConnectionKill::default();
        let connection = handle(stream, kill.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = connection => {}
                () = kill.fired() => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}

/// Serves an axum router; every request carries its connection's kill switch.
pub async fn serve_router(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    accept_loop(listener, shutdown, move |stream, kill| {
        let router = router.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(kill.clone());
                router.clone().oneshot(request)
            },
        );
        async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
}

/// Serves the S3 service.
pub async fn serve_s3(
    listener: TcpListener,
    service: s3s::service::S3Service,
    shutdown: CancellationToken,
) {
    accept_loop(listener, shutdown, move |stream, _| {
        let service = service.clone();
        async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
}
