//! `amoeba cache [list|clear]`: the extracted `.tar.gz` modules kept between runs
//! (`$AMOEBA_CACHE_DIR`, else `$XDG_CACHE_HOME/amoeba/modules`, else
//! `~/.cache/amoeba/modules`; `AMOEBA_CACHE_DIR=` with no value turns the cache off).

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Where the cache is, and each entry (an archive's sha256) with its size.
    List,
    /// Remove every entry.
    Clear,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(value_enum, default_value = "list")]
    action: Action,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(cache) = hub_module::cache_dir() else {
        super::print_out(&format!(
            "no cache: {} is set empty, or no home folder is known; archives are extracted into the temp folder each time\n",
            hub_module::CACHE_ENV
        ))?;
        return Ok(ExitCode::SUCCESS);
    };
    let entries = hub_module::cache_entries(&cache)
        .map_err(|e| anyhow::anyhow!("{}: cannot read the cache: {e}", cache.display()))?;
    match args.action {
        Action::List => {
            let mut text = format!("cache: {} ({} entries)\n", cache.display(), entries.len());
            for (dir, bytes) in &entries {
                text += &format!("  {}  {bytes} bytes\n", dir.display());
            }
            super::print_out(&text)?;
        }
        Action::Clear => {
            let removed = hub_module::clear_cache(&cache)
                .map_err(|e| anyhow::anyhow!("{}: cannot clear the cache: {e}", cache.display()))?;
            super::print_done(
                &format!("removed {removed} entries from {}\n", cache.display()),
                None,
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
