//! `mock-apple`: Apple's Sign in with Apple service, faked, on your machine.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;
use mock_apple::MockApple;

/// A faithful, controllable fake of Apple's Sign in with Apple service.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "MOCK_APPLE_PORT", default_value_t = 4000)]
    port: u16,
    /// Address to listen on.
    #[arg(long, env = "MOCK_APPLE_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Keep signing keys here, so restarts publish the same JWKS.
    #[arg(long, env = "MOCK_APPLE_KEY_DIR")]
    key_dir: Option<PathBuf>,
    /// The `iss` of the tokens.
    #[arg(long, env = "MOCK_APPLE_ISSUER", default_value = siwa_core::ISSUER)]
    issuer: String,
    /// The address clients use to reach the mock, if not http://HOST:PORT.
    #[arg(long, env = "MOCK_APPLE_BASE_URL")]
    base_url: Option<String>,
    /// The client id of tokens minted without one.
    #[arg(long, env = "MOCK_APPLE_CLIENT_ID", default_value = "com.example.app")]
    client_id: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print many valid identity tokens, one per line, each of a different user, signed with
    /// the key of a mock running with `--key-dir DIR` (for benchmarks).
    Tokens {
        /// The running mock's key directory.
        #[arg(long)]
        key_dir: PathBuf,
        /// How many tokens.
        #[arg(long)]
        count: u64,
        /// How many users they are of (default: one per token). Token N is user FIRST + N % USERS.
        #[arg(long)]
        users: Option<u64>,
        /// The number of the first user: users FIRST..FIRST+COUNT, the same user for the same
        /// number in every run.
        #[arg(long, default_value_t = 0)]
        first: u64,
        /// Each token carries the hash of a raw nonce, printed after it: `TOKEN RAW_NONCE`.
        #[arg(long)]
        nonces: bool,
        /// The tokens' lifetime.
        #[arg(long, default_value_t = 3600)]
        lifetime_secs: i64,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "mock_apple=info".into()),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args = Args::parse();
    if let Some(Command::Tokens {
        key_dir,
        count,
        users,
        first,
        nonces,
        lifetime_secs,
    }) = args.command
    {
        let batch = mock_apple::batch::TokenBatch {
            issuer: args.issuer,
            client_id: args.client_id,
            first,
            count,
            users: users.unwrap_or(count),
            nonces,
            lifetime_secs,
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        };
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
        return match batch.write(&key_dir, &mut out) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("mock-apple tokens: {error}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let mut builder = MockApple::builder()
        .address(SocketAddr::new(args.host, args.port))
        .issuer(args.issuer)
        .default_client_id(args.client_id);
    if let Some(dir) = args.key_dir {
        builder = builder.key_dir(dir);
    }
    if let Some(url) = args.base_url {
        builder = builder.base_url(url);
    }
    let apple = match builder.start().await {
        Ok(apple) => apple,
        Err(error) => {
            eprintln!("mock-apple: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let base = apple.base_url().to_owned();
    println!("mock-apple is serving Apple's Sign in with Apple endpoints");
    println!("  base URL:  {base}");
    println!("  JWKS:      {}", apple.jwks_url());
    println!("  issuer:    {}", apple.issuer());
    println!();
    println!("Mint an identity token and an authorization code:");
    println!(
        "  curl -s -X POST {base}/mock/identity-token -H 'content-type: application/json' -d '{{}}'"
    );
    println!("Get a developer key (.p8) to make client secrets with:");
    println!("  curl -s -X POST {base}/mock/developer-keys/generate");
    println!("Make a client secret with it, and exchange the code:");
    println!("  curl -s -X POST {base}/mock/client-secret");
    println!(
        "  curl -s {base}/auth/token -d client_id=com.example.app -d grant_type=authorization_code \\"
    );
    println!("       -d code=CODE -d client_secret=SECRET");
    println!("Rotate the signing key:");
    println!("  curl -s -X POST {base}/mock/keys");
    println!();
    apple.serve_until(shutdown_signal()).await;
    std::process::ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
