//! What the library warns about, on standard error, as this tool's own
//! lines: a corrupt token file moved aside, a refused refresh token, a token
//! store that could not be written. The library's backoff warning is left
//! out, since the failure itself ends the run with its own message.
//! `RUST_LOG` (targets and levels, such as `simacan_auth=debug`) replaces
//! that choice. No secret reaches these lines: the library logs none.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    Layer,
    filter::Targets,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

/// The library's modules whose warnings a run shows.
const SHOWN: [&str; 3] = [
    "simacan_auth::store",
    "simacan_auth::token::flight",
    "simacan_auth::token::auth_api",
];

/// Sends the library's warnings to standard error for the rest of the run.
pub(crate) fn show() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
        .unwrap_or_else(shown);
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(Line)
        .with_filter(filter);
    // Fails only when a subscriber is set already: then that one speaks.
    let _ = tracing_subscriber::registry().with(lines).try_init();
}

fn shown() -> Targets {
    SHOWN.iter().fold(Targets::new(), |targets, module| {
        targets.with_target(*module, Level::WARN)
    })
}

/// `simacan-auth: warning: <message> <field>=<value> …`.
struct Line;

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            _ => "debug",
        };
        write!(writer, "simacan-auth: {level}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_warnings_are_shown_and_the_backoff_is_not() {
        let targets = shown();
        assert!(targets.would_enable("simacan_auth::store::file::disk", &Level::WARN));
        assert!(targets.would_enable("simacan_auth::token::flight", &Level::ERROR));
        assert!(!targets.would_enable("simacan_auth::token::flight", &Level::INFO));
        assert!(!targets.would_enable("simacan_auth::token::cache", &Level::WARN));
    }
}
