//! `quarry token`: mints a development token signed with `JWT_SECRET`, printing only the token
//! (so `TOKEN=$(quarry token ...)` works).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Args;
use quarry_shared::auth::{mint_hs256, TokenClaims};
use quarry_shared::config::Settings;
use secrecy::ExposeSecret;

/// Arguments of `quarry token`.
#[derive(Args)]
pub struct TokenArgs {
    /// Subject (who the token is for).
    #[arg(long)]
    sub: String,
    /// Role, e.g. admin, analyst, finance, catalog.
    #[arg(long)]
    role: String,
    /// Region, e.g. americas, apac, emea.
    #[arg(long)]
    region: String,
    /// Lifetime: 90s, 15m, 1h, 7d (at most 30d).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: Duration,
}

/// Parses `90s`, `15m`, `1h`, `7d` or plain seconds.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{s}' is not a duration such as 90s, 15m, 1h, 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("'{s}': the unit must be s, m, h or d")),
    };
    if secs == 0 || secs > 30 * 86_400 {
        return Err("the lifetime must be between 1 s and 30 d".to_owned());
    }
    Ok(Duration::from_secs(secs))
}

/// Prints a signed token.
pub fn run(args: &TokenArgs) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    println!(
        "{}",
        mint(&settings, &args.sub, &args.role, &args.region, args.ttl)?
    );
    Ok(())
}

/// A token for `sub` with `role` and `region`, valid for `ttl`, signed with `JWT_SECRET`.
pub fn mint(
    settings: &Settings,
    sub: &str,
    role: &str,
    region: &str,
    ttl: Duration,
) -> anyhow::Result<String> {
    let secret = settings
        .jwt_secret
        .as_ref()
        .context("JWT_SECRET is not set (`make up` sets it for the local stack)")?;
    for (name, value) in [("--sub", sub), ("--role", role), ("--region", region)] {
        if value.trim().is_empty() {
            bail!("{name} must not be empty");
        }
    }
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    let claims = TokenClaims {
        sub: sub.to_owned(),
        role: role.to_owned(),
        region: region.to_owned(),
        iat: now,
        exp: now + i64::try_from(ttl.as_secs())?,
        nbf: None,
        iss: settings.jwt_issuer.clone(),
        aud: settings.jwt_audience.clone(),
    };
    Ok(mint_hs256(secret.expose_secret().as_bytes(), &claims)?)
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;
    use std::time::Duration;

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "h", "1y", "0s", "31d", "-1h", "1.5h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
