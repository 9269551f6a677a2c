//! Serves one stack's app over HTTP for `scripts/bench-http.sh`:
//! `bench-server --stack jwt-hs256 [--addr 127.0.0.1:0]`. Prints `listening on http://ADDR` and
//! `credential: NAME: VALUE` (the header a signed-in client sends) once `/me` and `/public` have
//! been checked to answer 200. One current-thread runtime: the script pins the process to one
//! core, so every stack gets exactly one core.

use std::io::Write as _;

use portcullis_bench::{RedisTarget, Stack, build, check};

fn usage() -> ! {
    let names: Vec<_> = Stack::ALL.iter().map(|s| s.name()).collect();
    let _ = writeln!(
        std::io::stderr(),
        "usage: bench-server --stack <{}> [--addr 127.0.0.1:0]",
        names.join("|")
    );
    std::process::exit(2);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut stack = None;
    let mut addr = "127.0.0.1:0".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--stack" => stack = Some(args.next().unwrap_or_else(|| usage()).parse::<Stack>()?),
            "--addr" => addr = args.next().unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let Some(stack) = stack else { usage() };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = build(stack, &RedisTarget::from_env()).await?;
        check(&app).await?;
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        let local = listener.local_addr()?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on http://{local}")?;
            writeln!(
                out,
                "credential: {}: {}",
                app.credential.0,
                app.credential.1.to_str()?
            )?;
            out.flush()?;
        }
        axum::serve(listener, app.router).await?;
        Ok(())
    })
}
