use adbudget_api::Application;
use adbudget_core::config::Settings;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    adbudget_core::telemetry::init(settings.log_format)?;
    let app = Application::build(&settings)?;
    tracing::info!(server.bind = %settings.bind, "adbudget-api listening");
    app.run_until_stopped().await?;
    Ok(())
}
