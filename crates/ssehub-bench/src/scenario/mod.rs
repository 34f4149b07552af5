//! Scenarios: `idle`, `fanout`, `rooms`, `storm`, `slow`, `soak`,
//! `selectors`.

mod fanout;
mod idle;
mod load;
mod rooms;
mod selectors;
mod slow;
mod soak;
mod storm;

use serde_json::json;

use crate::args::{Args, Name};
use crate::output::write_json;

/// Runs the chosen scenario and prints a summary and the JSON result.
pub(crate) async fn run(mut args: Args) -> anyhow::Result<()> {
    args.check_urls()?;
    let result = match args.scenario {
        Name::Idle => idle::run(&args).await?,
        Name::Fanout => fanout::run(&args).await?,
        Name::Rooms => rooms::run(&args).await?,
        Name::Storm => storm::run(&args).await?,
        Name::Slow => slow::run(&args).await?,
        Name::Soak => soak::run(&args).await?,
        Name::Selectors => selectors::run(&args).await?,
    };
    let result = json!({ "scenario": format!("{:?}", args.scenario).to_lowercase(), "server": args.label, "subscribers": args.subscribers,
        "sub_urls": args.sub_url, "pub_urls": args.pub_url, "result": result });
    write_json(args.json.as_ref(), &result)
}
