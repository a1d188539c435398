//! `arbiter serve`: the HTTP API.

use anyhow::Context;
use arbiter_config::Config;
use arbiter_server::Server;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file [default: ./arbiter.yaml when present, else built-in defaults].
    #[arg(long, env = "ARBITER_CONFIG")]
    config: Option<PathBuf>,

    /// The address to listen on (overrides `listen`).
    #[arg(long, env = "ARBITER_LISTEN")]
    listen: Option<String>,
}

pub async fn run(
    args: ServeArgs,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut config =
        Config::load(args.config.as_deref()).context("while loading the configuration")?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    if let Some(url) = database_url {
        config.database_url = url;
    }
    config
        .validate()
        .context("while checking the configuration")?;
    config.replica.resolve();
    crate::logging::init(&config.log, Some(&config.replica.id));
    let log = config.log.clone();
    let replica = config.replica.id.clone();
    let server = Server::bind(config)
        .await
        .context("while starting the server")?;
    crate::logging::announce_listening(&log, &replica, server.local_addr()?);

    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: draining, then finishing in-flight requests");
        signal.cancel();
    });
    server.run(shutdown).await.context("while serving")?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM.
async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
