//! `corral`: command-line tools around the daemon. When invoked through a symlink named like a qrexec
//! service (`/etc/qubes-rpc/admin.vm.volume.Import`), it runs that service.

mod import_service;
mod qubes_xml;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "corral", version, about = "Corral command-line tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an executable qrexec service (admin.vm.volume.Import or admin.vm.volume.ImportWithSize).
    QrexecService {
        /// Service name.
        service: String,
        /// Service argument (the volume name).
        arg: Option<String>,
    },
    /// Import a Qubes OS qubes.xml into a fresh state directory (with corrald stopped). Only metadata
    /// moves: copy the volume images into the pools yourself.
    ImportQubesXml {
        file: PathBuf,
        #[arg(long, env = "CORRAL_STATE_DIR", default_value = "/var/lib/corral")]
        state_dir: PathBuf,
    },
    /// Print the state as a Qubes OS qubes.xml.
    ExportQubesXml {
        #[arg(long, env = "CORRAL_STATE_DIR", default_value = "/var/lib/corral")]
        state_dir: PathBuf,
    },
    /// Manage the local users of the HTTP door (through the running daemon's internal socket).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Install the executable services as symlinks to this binary, where qubesadmin looks for them.
    InstallServices {
        #[arg(long, default_value = "/etc/qubes-rpc")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user, or set a new password; the password is read from the first line of standard input.
    Add { name: String },
    /// Remove a user.
    Remove { name: String },
    /// Issue a new virthttp service key for a user (the old one stops working) and print it: with
    /// `X-Auth-User-Service-Key` it reads `/libvirt` and runs power actions, nothing else.
    ServiceKey { name: String },
}

fn main() -> ExitCode {
    let argv0 = std::env::args().next().unwrap_or_default();
    let invoked_as = Path::new(&argv0).file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    if import_service::SERVICES.contains(&invoked_as.as_str()) {
        let arg = std::env::args().nth(1);
        return import_service::run(&invoked_as, arg.as_deref());
    }
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("corral: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::QrexecService { service, arg } => {
            if !import_service::SERVICES.contains(&service.as_str()) {
                anyhow::bail!("unknown service {service}");
            }
            Ok(import_service::run(&service, arg.as_deref()))
        }
        Command::ImportQubesXml { file, state_dir } => {
            qubes_xml::import(&file, &state_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ExportQubesXml { state_dir } => {
            qubes_xml::export(&state_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::User { action } => {
            let (method, payload) = match &action {
                UserAction::Add { name } => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).context("Cannot read the password")?;
                    (format!("corral.user.Add+{name}"), line.trim_end_matches(['\r', '\n']).to_string())
                }
                UserAction::Remove { name } => (format!("corral.user.Remove+{name}"), String::new()),
                UserAction::ServiceKey { name } => (format!("corral.user.ServiceKey+{name}"), String::new()),
            };
            let reply = import_service::internal_call(&method, payload.as_bytes())?;
            if !reply.is_empty() {
                println!("{}", String::from_utf8_lossy(&reply));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::InstallServices { dir } => {
            let exe = std::env::current_exe().context("Cannot find this executable")?;
            std::fs::create_dir_all(&dir).with_context(|| format!("Cannot create {}", dir.display()))?;
            for service in import_service::SERVICES {
                let link = dir.join(service);
                if link.symlink_metadata().is_ok() {
                    std::fs::remove_file(&link).with_context(|| format!("Cannot replace {}", link.display()))?;
                }
                std::os::unix::fs::symlink(&exe, &link).with_context(|| format!("Cannot create {}", link.display()))?;
                println!("{} -> {}", link.display(), exe.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
