//! `adbudget`: management commands (the successors of `manage.py`) and the standalone mode.

use std::io::{BufRead, IsTerminal};

use adbudget_core::access::{Author, Brands, Role};
use adbudget_core::config::Settings;
use adbudget_core::forms::{CreateBrand, CreateCampaign, SpendEvent, now};
use adbudget_core::money::{Money, NonNegativeMoney, PositiveMoney};
use adbudget_db as db;
use adbudget_db::repo::{brands, campaigns, spend, tokens, users};
use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use rand::Rng;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use adbudget_api::state::AppState;
use adbudget_beat::JobSink;
use adbudget_queue::memory::MemoryQueues;
use apalis::prelude::Monitor;

#[derive(Parser)]
#[command(
    name = "adbudget",
    version,
    about = "Budget enforcement for ad agencies: management commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations to DATABASE_URL.
    Migrate,
    /// Create an admin-panel user with the admin role (`user create --role admin`).
    Createsuperuser {
        #[arg(long)]
        username: String,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage admin-panel users and their roles.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Reverse a recorded spend with a compensating entry (totals and campaign states follow).
    ReverseSpend {
        /// The spend log's id.
        id: i64,
        /// Why (shown beside the reversal and in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Record one spend event through the same code path as POST /api/v1/spend.
    LogSpend {
        campaign_id: i64,
        /// A decimal amount such as 12.34 (at most 6 decimals).
        amount: String,
        #[arg(long)]
        event_id: Option<String>,
        /// When the spend occurred (RFC 3339); now when left out.
        #[arg(long)]
        at: Option<String>,
    },
    /// Write one month of spend logs (by `occurred_at`, in UTC) as CSV, read in pages: to
    /// archive the month before the retention drops it.
    ExportSpend {
        /// The month, `YYYY-MM`.
        #[arg(long)]
        month: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Create a few demo brands and campaigns (skips those that exist).
    SeedDemo,
    /// Recompute every period total from the spend logs and every campaign's state from the
    /// rule; report disagreements and exit non-zero if there are any.
    Verify,
    /// Migrations, API, worker and beat in one process (SQLite and in-memory queues by default).
    Standalone,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it, alone, on standard output.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["read", "ingest", "admin"])]
        scope: String,
        /// Bind the token to this brand (repeatable): it sees and touches only those brands.
        #[arg(long = "brand")]
        brands: Vec<i64>,
        /// Expire the token after this long: `90d`, `12h`, `30m`.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List tokens (never their secrets), with brands, expiry and last use.
    List,
    /// Revoke a live token by name (or id); it stops working at once.
    Revoke { name: String },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = ["admin", "operator", "viewer"])]
        role: String,
        /// Bind the user to this brand (repeatable): they see and touch only those brands.
        #[arg(long = "brand")]
        brands: Vec<i64>,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users with their roles, brands and state.
    List,
    /// Disable a user: they can no longer log in, and their sessions end at once.
    Disable { username: String },
    /// Enable a disabled user again.
    Enable { username: String },
    /// Set a user's password (every session of theirs ends).
    SetPassword {
        username: String,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// `90d`, `12h`, `30m`: a positive duration of whole days, hours or minutes.
fn parse_duration(text: &str) -> anyhow::Result<chrono::Duration> {
    let bad = || anyhow!("--expires-in must be like 90d, 12h or 30m (got {text:?})");
    let unit = text.chars().last().ok_or_else(bad)?;
    let number = &text[..text.len() - unit.len_utf8()];
    let n: i64 = number.parse().map_err(|_| bad())?;
    if !(1..=100_000).contains(&n) {
        return Err(bad());
    }
    match unit {
        'd' => Ok(chrono::Duration::days(n)),
        'h' => Ok(chrono::Duration::hours(n)),
        'm' => Ok(chrono::Duration::minutes(n)),
        _ => Err(bad()),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::from_env()?;
    adbudget_core::telemetry::init(settings.log_format)?;
    if let Command::Standalone = cli.command {
        return standalone(settings);
    }
    let mut conn = db::connect_one(&settings.database_url)?;
    run(cli.command, &mut conn)
}

fn run(command: Command, conn: &mut db::DbConnection) -> anyhow::Result<()> {
    match command {
        Command::Standalone => bail!("standalone runs on its own pool"),
        Command::Migrate => {
            let n = db::migrate(conn)?;
            eprintln!("applied {n} migration(s)");
        }
        Command::Createsuperuser {
            username,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            users::create_superuser(conn, &username, &password, now(), &Author::cli())?;
            eprintln!("created user {username:?} (admin)");
        }
        Command::Token { command } => token(command, conn)?,
        Command::User { command } => user(command, conn)?,
        Command::ReverseSpend { id, reason } => {
            let reversed = spend::reverse(conn, id, &reason, &Brands::All, now(), &Author::cli())?;
            eprintln!(
                "reversed spend {} ({} on campaign {}) with spend log {}",
                id, reversed.reversed.amount, reversed.campaign.id, reversed.reversal.id
            );
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "reversed": reversed.reversed,
                    "reversal": reversed.reversal,
                    "campaign": reversed.campaign,
                }))?
            );
        }
        Command::LogSpend {
            campaign_id,
            amount,
            event_id,
            at,
        } => {
            let amount = Money::parse_positive(&amount)
                .map_err(|e| anyhow!("amount {e} (got {amount:?})"))?;
            let occurred_at = at
                .map(|t| DateTime::parse_from_rfc3339(&t).map(|t| t.with_timezone(&Utc)))
                .transpose()
                .map_err(|_| {
                    anyhow!("--at must be an RFC 3339 time such as 2026-11-21T09:00:00Z")
                })?;
            let event = SpendEvent {
                campaign_id,
                amount: PositiveMoney(amount),
                occurred_at,
                event_id,
            };
            let at = now();
            let event = event.validate(at)?;
            let recorded = spend::record(conn, &[event], at, spend::Mode::Single)?;
            let (Some(outcome), Some(campaign)) =
                (recorded.outcomes.first(), recorded.campaigns.first())
            else {
                bail!("nothing was recorded");
            };
            let what = if outcome.is_new() {
                "recorded"
            } else {
                "already recorded (replay, nothing counted)"
            };
            eprintln!(
                "{what}: {} on campaign {}",
                outcome.log().amount,
                campaign.id
            );
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"spend": outcome.log(), "campaign": campaign})
                )?
            );
        }
        Command::ExportSpend { month, output } => export_spend(conn, &month, output)?,
        Command::SeedDemo => seed_demo(conn)?,
        Command::Verify => {
            let report = adbudget_db::repo::verify::check(conn, now())?;
            if let Some(kept_from) = report.kept_from {
                println!(
                    "spend logs before {} were dropped by the retention: checked only the periods that start after it (lifetime totals not checked)",
                    kept_from.format("%Y-%m-%d %H:%M UTC")
                );
            }
            for finding in &report.findings {
                println!("{finding}");
            }
            println!(
                "checked {} spend logs and {} campaigns: {} disagreement(s)",
                report.spend_logs,
                report.campaigns,
                report.findings.len()
            );
            if !report.is_clean() {
                bail!(
                    "the stored numbers disagree with the spend logs or the rule (run enforce_budgets to repair states)"
                );
            }
        }
    }
    Ok(())
}

/// Spend logs read per query by `export-spend`.
const EXPORT_PAGE: i64 = 10_000;

/// `adbudget export-spend`: the month's spend logs as CSV (a header, then a row per log by id),
/// streamed page by page, with a progress bar on standard error when it is a terminal.
fn export_spend(
    conn: &mut db::DbConnection,
    month: &str,
    output: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    use spend::export;
    let month = export::Month::parse(month)
        .ok_or_else(|| anyhow!("--month must be a month such as 2026-11 (got {month:?})"))?;
    let sink: Box<dyn std::io::Write> = match &output {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut csv = csv::Writer::from_writer(std::io::BufWriter::new(sink));
    let total = export::count(conn, month)?;
    let bar = indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(0));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} spend logs [{wide_bar}] {eta} left",
        )?
        .progress_chars("=> "),
    );
    let (mut after, mut written) = (0, 0_u64);
    loop {
        let page = export::page(conn, month, after, EXPORT_PAGE)?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id;
        for log in &page {
            csv.serialize(log)?;
        }
        written += page.len() as u64;
        bar.inc(page.len() as u64);
    }
    // A header even for an empty month: the file says what it is.
    if written == 0 {
        csv.write_record(export::HEADER)?;
    }
    csv.flush()?;
    bar.finish_and_clear();
    let to = output.map_or("standard output".to_owned(), |p| p.display().to_string());
    eprintln!("exported {written} spend logs of {month} (occurred_at in UTC) to {to}");
    Ok(())
}

fn token(command: TokenCommand, conn: &mut db::DbConnection) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            scope,
            brands,
            expires_in,
        } => {
            let scope = tokens::Scope::parse(&scope)
                .ok_or_else(|| anyhow!("--scope must be read, ingest or admin"))?;
            let at = now();
            let expires_at = expires_in
                .as_deref()
                .map(parse_duration)
                .transpose()?
                .map(|d| at + d);
            let new = tokens::NewToken {
                name,
                scope,
                brands: (!brands.is_empty()).then_some(brands),
                expires_at,
            };
            let (view, secret) = tokens::create(conn, &new, at, &Author::cli())?;
            eprintln!(
                "created {} token {:?} ({}…) for {}{}; it is shown once:",
                view.scope,
                view.name,
                view.prefix,
                brands_text(&view.brands),
                view.expires_at
                    .map(|t| format!(", expiring {}", t.to_rfc3339()))
                    .unwrap_or_default()
            );
            println!("{secret}");
        }
        TokenCommand::List => {
            let list = tokens::list(conn)?;
            println!(
                "{:<6} {:<24} {:<7} {:<14} {:<16} {:<26} {:<26} {:<26} status",
                "id", "name", "scope", "prefix", "brands", "created", "expires", "last used"
            );
            let time = |t: Option<DateTime<Utc>>, none: &str| {
                t.map_or(none.to_owned(), |t| {
                    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
                })
            };
            for t in list {
                let status = match (t.revoked_at, t.expires_at) {
                    (Some(at), _) => format!("revoked {}", at.to_rfc3339()),
                    (None, Some(e)) if e <= now() => "expired".to_owned(),
                    _ => "live".to_owned(),
                };
                println!(
                    "{:<6} {:<24} {:<7} {:<14} {:<16} {:<26} {:<26} {:<26} {status}",
                    t.id,
                    t.name,
                    t.scope,
                    t.prefix,
                    brands_text(&t.brands),
                    time(Some(t.created_at), ""),
                    time(t.expires_at, "never"),
                    time(t.last_used_at, "never"),
                );
            }
        }
        TokenCommand::Revoke { name } => {
            let t = tokens::revoke(
                conn,
                tokens::TokenRef::NameOrId(&name),
                now(),
                &Author::cli(),
            )?;
            eprintln!("revoked token {:?} ({})", t.name, t.id);
        }
    }
    Ok(())
}

fn brands_text(brands: &Option<Vec<i64>>) -> String {
    match brands {
        None => "all brands".to_owned(),
        Some(ids) => format!(
            "brands {}",
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn user(command: UserCommand, conn: &mut db::DbConnection) -> anyhow::Result<()> {
    let author = Author::cli();
    match command {
        UserCommand::Create {
            username,
            role,
            brands,
            password_stdin,
        } => {
            let role = Role::parse(&role)
                .ok_or_else(|| anyhow!("--role must be admin, operator or viewer"))?;
            let password = read_password(password_stdin)?;
            let new = users::NewUser {
                username: username.clone(),
                password,
                role,
                brands: (!brands.is_empty()).then_some(brands),
            };
            users::create(conn, &new, now(), &author)?;
            eprintln!(
                "created user {username:?} ({}, {})",
                role.as_str(),
                brands_text(&new.brands)
            );
        }
        UserCommand::List => {
            println!(
                "{:<6} {:<24} {:<9} {:<16} {:<9} last login",
                "id", "username", "role", "brands", "state"
            );
            for u in users::list(conn)? {
                println!(
                    "{:<6} {:<24} {:<9} {:<16} {:<9} {}",
                    u.id,
                    u.username,
                    u.role.as_str(),
                    brands_text(&u.brands),
                    if u.is_active { "enabled" } else { "disabled" },
                    u.last_login_at
                        .map_or("never".to_owned(), |t| t.to_rfc3339())
                );
            }
        }
        UserCommand::Disable { username } => {
            users::set_active(conn, &username, false, now(), &author)?;
            eprintln!("disabled user {username:?}; their sessions have ended");
        }
        UserCommand::Enable { username } => {
            users::set_active(conn, &username, true, now(), &author)?;
            eprintln!("enabled user {username:?}");
        }
        UserCommand::SetPassword {
            username,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            users::set_password(conn, &username, &password, now(), &author)?;
            eprintln!("set the password of {username:?}; their sessions have ended");
        }
    }
    Ok(())
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("failed to read the password from stdin")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = rpassword::prompt_password("Password: ")?;
    let again = rpassword::prompt_password("Password (again): ")?;
    if first != again {
        bail!("the passwords do not match");
    }
    Ok(first)
}

struct DemoBrand {
    name: &'static str,
    daily_budget: &'static str,
    monthly_budget: &'static str,
    timezone: &'static str,
    campaigns: &'static [DemoCampaign],
}

struct DemoCampaign {
    name: &'static str,
    daily_cap: Option<&'static str>,
    /// A dayparting schedule as JSON.
    dayparting: Option<&'static str>,
}

const DEMO: &[DemoBrand] = &[
    DemoBrand {
        name: "Acme Shoes",
        daily_budget: "500.00",
        monthly_budget: "12000.00",
        timezone: "Europe/Berlin",
        campaigns: &[
            DemoCampaign {
                name: "Winter boots",
                daily_cap: Some("200.00"),
                dayparting: None,
            },
            DemoCampaign {
                name: "Office hours sneakers",
                daily_cap: None,
                dayparting: Some(
                    r#"[{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}]"#,
                ),
            },
        ],
    },
    DemoBrand {
        name: "Northwind Coffee",
        daily_budget: "150.00",
        monthly_budget: "4000.00",
        timezone: "America/New_York",
        campaigns: &[
            DemoCampaign {
                name: "Morning rush",
                daily_cap: None,
                dayparting: Some(r#"{"start_hour": 6, "end_hour": 11}"#),
            },
            DemoCampaign {
                name: "Late night",
                daily_cap: Some("40.00"),
                dayparting: Some(r#"[{"start": "22:00", "end": "02:00"}]"#),
            },
        ],
    },
    DemoBrand {
        name: "Sakura Travel",
        daily_budget: "1000.00",
        monthly_budget: "25000.00",
        timezone: "Asia/Tokyo",
        campaigns: &[DemoCampaign {
            name: "Cherry blossom season",
            daily_cap: Some("600.00"),
            dayparting: None,
        }],
    },
];

fn money(s: &str) -> anyhow::Result<NonNegativeMoney> {
    Ok(NonNegativeMoney(Money::parse_non_negative(s)?))
}

fn seed_demo(conn: &mut db::DbConnection) -> anyhow::Result<()> {
    for brand in DEMO {
        let brand_id = match brands::find_by_name(conn, brand.name)? {
            Some(id) => id,
            None => {
                let form = CreateBrand {
                    name: brand.name.into(),
                    daily_budget: money(brand.daily_budget)?,
                    monthly_budget: money(brand.monthly_budget)?,
                    timezone: Some(brand.timezone.into()),
                    alert_thresholds: None,
                };
                brands::create(conn, &form.validate()?, now(), &Author::cli())?.id
            }
        };
        for demo in brand.campaigns {
            if campaigns::find_by_name(conn, brand_id, demo.name)?.is_some() {
                continue;
            }
            let form = CreateCampaign {
                brand_id,
                name: demo.name.into(),
                daily_cap: demo.daily_cap.map(money).transpose()?,
                monthly_cap: None,
                dayparting: demo.dayparting.map(serde_json::from_str).transpose()?,
                manually_paused: None,
                lifetime_cap: None,
                flight_start: None,
                flight_end: None,
            };
            let c = campaigns::create(conn, &form.validate()?, now(), &Author::cli())?;
            let state = if c.is_active {
                "active".to_owned()
            } else {
                format!("paused ({})", c.pause_reasons)
            };
            eprintln!(
                "campaign {} {:?} of {:?}: {state}",
                c.id, c.name, brand.name
            );
        }
    }
    eprintln!("demo data is in place");
    Ok(())
}

/// Migrations, the API, and the worker and beat in process on in-memory queues: the embedded
/// default needs no Redis. Creates an admin user with a random password, printed once, when there
/// is none.
fn standalone(settings: Settings) -> anyhow::Result<()> {
    let pool = db::connect(&settings.database_url, settings.db_pool_size)?;
    {
        let mut conn = db::get(&pool)?;
        let n = db::migrate(&mut conn)?;
        tracing::info!(db.migrations = n, db.url = %db::redact(&settings.database_url), "database ready");
        if users::count(&mut conn)? == 0 {
            let password: String = rand::rng()
                .sample_iter(&rand::distr::Alphanumeric)
                .take(20)
                .map(char::from)
                .collect();
            users::create_superuser(&mut conn, "admin", &password, now(), &Author::cli())?;
            println!("Created the admin user for the admin panel; this password is shown once.");
            println!("  username: admin");
            println!("  password: {password}");
        }
    }
    let listener = std::net::TcpListener::bind(settings.bind)
        .with_context(|| format!("failed to bind ADBUDGET_BIND={}", settings.bind))?;
    tokio::runtime::Runtime::new()?.block_on(async move {
        let queues = MemoryQueues::default();
        let sink = JobSink::Memory(queues.clone());
        let monitor = Monitor::new().should_restart(|w, error| {
            tracing::warn!(worker.name = w.name(), %error, "restarting");
            true
        });
        let monitor =
            adbudget_worker::register_in_memory(monitor, &queues, &settings, pool.clone());
        let last_tick = Arc::new(AtomicI64::new(0));
        let schedules = adbudget_beat::Schedules::load(pool.clone(), &settings.schedules).await?;
        let monitor = adbudget_beat::register_schedules(monitor, &schedules, &sink, &last_tick);
        // Bring every campaign up to date at start: the process may have been down over a window
        // change or a midnight.
        adbudget_beat::catch_up(&sink, &schedules, chrono::Utc::now()).await?;
        tokio::spawn(schedules.follow());
        let admin = adbudget_api::admin::AdminState::from_settings(&settings);
        let state = AppState::new(pool)
            .with_gauge_refresh(adbudget_api::state::GAUGE_REFRESH)
            .with_webhook_allow_private(settings.webhook_allow_private)
            .with_queues(sink.clone());
        let app = adbudget_api::Application::new(state, admin, listener)?;
        println!(
            "adbudget is serving http://{}  (Ctrl-C stops it)",
            settings.bind
        );
        tokio::select! {
            served = app.run_until_stopped() => served.context("the API server failed"),
            jobs = monitor.run() => Err(anyhow::anyhow!("the in-process jobs stopped: {jobs:?}")),
        }
    })
}
