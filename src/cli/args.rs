//! The command line: clap definitions, with help that teaches by example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::deployment::Template;
use crate::firewall::Policy;
use crate::render::Format;

const EXAMPLES: &str = "\
Examples:
  scc-ports catalog                          every documented port, grouped by component
  scc-ports init --template redundant > acme.toml
  scc-ports plan acme.toml                   every binding of every node
  scc-ports check acme.toml                  conflicts and mistakes, before installation
  scc-ports firewall acme.toml --target nftables --node APP1 -o app1.nft
  scc-ports listen acme.toml --node APP1     on APP1: answer probes on every planned port
  scc-ports probe acme.toml --from agents    in the agents' zone: prove every flow passes

Without a FILE, commands use the embedded all-in-one demo system.
Exit codes: 0 fine, 1 the answer is \"no\" (errors found, flows failed), 2 bad input or invocation.";

#[derive(Debug, Parser)]
#[command(
    name = "scc-ports",
    version,
    about = "Plan, check, firewall and prove the ports of an on-premise Sinch Contact Center",
    long_about = "Plan, check, firewall and prove the ports of an on-premise Sinch Contact Center.\n\n\
        scc-ports knows every documented port of every component (the catalog), reads your system \
        model (HAC nodes, virtual units, zones) from a TOML file, resolves the effective ports, \
        finds conflicts before installation, writes the firewall rules for every server, \
        workstation and network firewall, and proves on the real network that every required flow \
        passes.",
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    /// Use another port catalog (same schema as the embedded one) instead of the embedded catalog
    #[arg(long, global = true, value_name = "FILE")]
    pub catalog: Option<PathBuf>,

    /// When to colour the output
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// Colour when writing to a terminal (and NO_COLOR is not set)
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every documented port of every component (the embedded catalog)
    #[command(
        long_about = "List every documented port of every component: protocol, default, whether an \
            installation variable can change it, who connects, and the source page's usage text.\n\n\
            The catalog is the source page \"Default Ports of Sinch Contact Center Components\" to \
            the last row. `--format json` gives the machine-readable catalog.",
        after_help = "Examples:\n  scc-ports catalog\n  scc-ports catalog --component media-routing-server\n  \
            scc-ports catalog --format csv > ports.csv\n  scc-ports catalog --format json | jq '.[].id'"
    )]
    Catalog(CatalogArgs),

    /// Print a commented starter deployment file
    #[command(
        long_about = "Print a commented starter deployment file (TOML) to edit: zones, HAC nodes, \
            virtual units and their variables. The all-in-one template is also the embedded default \
            system that every command uses when no FILE is given.",
        after_help = "Examples:\n  scc-ports init > acme.toml\n  scc-ports init --template redundant > acme.toml"
    )]
    Init {
        /// Which starter system
        #[arg(long, value_enum, default_value_t = Template::AllInOne)]
        template: Template,
    },

    /// Show every port binding of every node: what listens where, and why that port
    #[command(
        long_about = "Show every port binding of the system: for each HAC node, every address it \
            listens on (its own, and the virtual IP of each unit it holds an instance of), each \
            component's ports resolved from the defaults and the installation variables, and where \
            each value came from. Client zones list the workstation ports (Communication Desktop).",
        after_help = "Examples:\n  scc-ports plan                       the embedded all-in-one demo\n  \
            scc-ports plan acme.toml --node APP1\n  scc-ports plan acme.toml --format csv > bindings.csv"
    )]
    Plan(PlanArgs),

    /// Find conflicts and mistakes before installation (exit 1 when there are errors)
    #[command(
        long_about = "Find conflicts and mistakes before installation: ports that clash on one address \
            or node, duplicate addresses, addresses outside their zone, units without failover, ports \
            in the Windows dynamic range, roles no zone carries, ports left unset. Each finding has a \
            stable code (see docs/checks.md), the places involved and a hint.\n\n\
            Exit code 0 when there are no errors (warnings are allowed), 1 when there are.",
        after_help = "Examples:\n  scc-ports check\n  scc-ports check acme.toml\n  \
            scc-ports check acme.toml --format json | jq '.findings[] | select(.severity == \"error\")'"
    )]
    Check(CheckArgs),

    /// List every flow: who must reach which address, on which transport and ports
    #[command(
        long_about = "List every flow the system needs: the source role and its networks, the \
            destination address, transport and port range, the component and port id, and its \
            purpose. Adjacent ranges of one component merge (CDT's RTP and RTCP become 5004-5031); \
            a flow is never a product of a protocol list and a port list.",
        after_help = "Examples:\n  scc-ports flows acme.toml\n  scc-ports flows acme.toml --from agents\n  \
            scc-ports flows acme.toml --node APP1 --format csv"
    )]
    Flows(FlowsArgs),

    /// Write firewall rules for a server, the workstations, or a firewall between zones
    #[command(
        long_about = "Write the firewall rules that admit exactly the planned flows.\n\n\
            --node NAME     the host firewall of one server: every binding on the node (its own \
            address and the virtual IPs of its units), sources restricted to the roles that connect. \
            nftables and iptables output is a complete host policy (default drop; established, \
            loopback and essential ICMP accepted); --policy accept gives only the allow rules.\n\
            --workstations  the agent PCs' rules (Communication Desktop's RTP/RTCP ports).\n\
            --network       the zone-to-zone rules for a firewall between zones (forwarded traffic).\n\n\
            --target aerleon writes a directory (-o DIR): an Aerleon policy for aclgen, which renders \
            it for Cisco ASA, PAN-OS, SRX, FortiGate, nftables, iptables and the Windows firewall; \
            --network renders each [firewalls.NAME] of the file (docs/firewall.md).",
        after_help = "Examples:\n  scc-ports firewall acme.toml --target nftables --node APP1 -o app1.nft\n  \
            scc-ports firewall acme.toml --target windows --workstations > cdt.ps1\n  \
            scc-ports firewall acme.toml --target csv --network > request.csv\n  \
            scc-ports firewall acme.toml --target aerleon --network -o policy\n  \
            scc-ports firewall acme.toml --target aerleon --network --firewall EDGE --diff edge-asa.cfg"
    )]
    Firewall(FirewallArgs),

    /// Answer probes on every port planned on a node (run it on the server, before installation)
    #[command(
        long_about = "Bind every TCP and UDP port planned on a node (its own address and the virtual \
            IPs of its units; --bind ADDR to override) and answer authenticated probes, so that \
            `scc-ports probe` can prove from each client zone that the network lets the planned \
            flows through. Ports that cannot be bound are listed with the reason (in use: by which \
            process; permission), then one line starting `ready:`. Runs until --duration, Ctrl-C or \
            SIGTERM, then prints what it answered. Exit 1 when a port could not be bound; at once \
            when a planned address is not on this host or no port could be bound.\n\n\
            The secret comes from --secret-file or SCC_PORTS_SECRET; without either, one is made \
            and printed (`secret: ...`).\n\n\
            On an agent PC, --workstations ZONE answers instead on the workstation ports of the \
            client zone ZONE (Communication Desktop's RTP/RTCP), on every address of the PC \
            (--bind ADDR for one); the servers then probe it with `probe --to-workstation ADDR`.",
        after_help = "Examples:\n  scc-ports listen acme.toml --node APP1 --secret-file scc.secret\n  \
            SCC_PORTS_SECRET=s3cret scc-ports listen acme.toml --node APP1 --duration 90s\n  \
            scc-ports listen acme.toml --workstations agents --secret-file scc.secret    on an agent PC\n  \
            scc-ports listen --node SCC1 --bind 127.0.0.1 --duration 10m    try it on one machine"
    )]
    Listen(ListenArgs),

    /// Prove from a client zone that every planned flow passes (exit 1 unless all are verified)
    #[command(
        long_about = "Probe every flow whose source includes ZONE: each planned port of each \
            destination is classified as verified (our listener's token came back), open (something \
            else accepts or answers), closed (refused), filtered (no answer in time) or error. It \
            refuses to run from a host that is not in ZONE (--source ADDR behind NAT). With \
            --unexpected, every other TCP port of every node and unit address is swept too (with \
            --node, that node's and its units') and those that accept are listed: the proof that \
            nothing else is reachable; an address that cannot be swept is named and fails the run. Exit 0 only when every \
            flow is verified (and, with --unexpected, nothing unexpected answers).\n\n\
            --to-workstation ADDR (repeatable) probes instead the workstation ports of the agent PC \
            at ADDR (running `listen --workstations ZONE`) that ZONE sends to: run it where the \
            media comes from (for the servers' zone, the node holding the media unit's address, \
            with --source that address when it is not the one routing picks); with --unexpected \
            the PCs' own addresses are swept, not the nodes'.",
        after_help = "Examples:\n  scc-ports probe acme.toml --from agents --secret-file scc.secret\n  \
            scc-ports probe acme.toml --from datacenter --to-workstation 10.1.2.3 --source 10.0.0.101\n  \
            scc-ports probe acme.toml --from carrier --node APP1 --format junit > probe.xml\n  \
            SCC_PORTS_SECRET=s3cret scc-ports probe acme.toml --from datacenter --unexpected --format json"
    )]
    Probe(ProbeArgs),

    /// Merge the probe results of every zone into the system's report, with a fix per failure
    #[command(
        long_about = "Merge the probe results of every zone (`probe --format json` files) with the \
            plan into the system's matrix: every planned port from every zone, verified or not. Each \
            failure gets its likely cause (filtered: a firewall on the path, with the hops that must \
            admit it; closed: nothing bound; open: another process holds the port) and the rule that \
            would admit it in the --target's syntax. Planned ports no result covers are `untested`.\n\n\
            A result file counts only for the zone it was made in: at least one address it was sent \
            from lies in the zone it names, and it names the zone --expect-zone gives for it; else it \
            is listed as not counting and its results are not used. A result of a newer format is \
            refused.\n\n\
            --audit adds audit results (`audit --format json`, of nodes and network firewalls): per \
            audited firewall its flows not admitted and its openings beyond the plan, with the \
            `firewall --diff` command that fixes them; an audit whose flows are not the plan's for \
            its firewall does not count. --compare OLD.json (an earlier report's JSON, or an audit \
            result) adds what is newly failing, newly fixed, newly open and closed since.\n\n\
            Exit 0 only when every planned port is verified, every result and audit file counts, \
            every audited firewall admits exactly the plan and, with --compare, nothing got worse \
            (the report is written either way); 2 when a file cannot be read.",
        after_help = "Examples:\n  scc-ports report acme.toml results/*.json\n  \
            scc-ports report acme.toml agents.json carrier.json --format html -o report.html\n  \
            scc-ports report acme.toml agents.json --expect-zone agents.json=agents\n  \
            scc-ports report acme.toml results/*.json --format junit --target iptables > report.xml\n  \
            scc-ports report acme.toml --audit APP1.json --audit EDGE.json --format json > audit.json\n  \
            scc-ports report acme.toml --audit APP1.json --compare last-audit.json"
    )]
    Report(ReportArgs),

    /// Draw the system: zones, units, nodes and the flows between them (Mermaid, DOT or SVG)
    #[command(
        after_help = "Examples:\n  scc-ports diagram acme.toml > system.mmd\n  \
            scc-ports diagram acme.toml --format svg > system.svg\n  \
            scc-ports diagram acme.toml --format dot | dot -Tpng > system.png"
    )]
    Diagram(DiagramArgs),

    /// Print an Ansible inventory skeleton for the system (for ansible/verify.yml)
    #[command(after_help = "Examples:\n  scc-ports inventory acme.toml > inventory.yml")]
    Inventory {
        /// The deployment file (TOML); the embedded all-in-one demo when omitted
        file: Option<PathBuf>,
    },
    /// Audit a live ruleset against the plan: which flows it admits, blocks, and what else it opens
    #[command(
        long_about = "Audit a live ruleset (an export of the firewall as it is) against the plan. For \
            every planned flow of the node (--node) or of the firewall between zones (--network): \
            admitted, blocked or partial (with the blocked ports), naming the deciding rule; and \
            every opening beyond the plan (`extra`). The format is detected from the content: \
            `nft -j list ruleset`, `nft list ruleset` text (or an nftables.conf), `iptables-save`, \
            `ip6tables-save`, the Windows Firewall JSON export, `aws ec2 describe-security-groups`, \
            firewalld's `firewall-cmd --list-all-zones` text and its XML files (a copy of \
            /etc/firewalld), and with --network an appliance's configuration (Cisco ASA, PAN-OS \
            XML or set, FortiOS, Juniper SRX), whose zones the deployment's [firewalls.NAME] maps \
            (see docs/audit.md for each export line).\n\n\
            Exit 0 when the ruleset admits exactly the plan, 1 otherwise (also when a rule cannot \
            be evaluated: \"cannot decide\"), 2 when the export cannot be read.",
        after_help = "Examples:\n  nft -j list ruleset > app1.json; scc-ports audit acme.toml --node APP1 --ruleset app1.json\n  \
            iptables-save > fw.rules; scc-ports audit acme.toml --network --ruleset fw.rules --format json\n  \
            scc-ports audit acme.toml --network --firewall EDGE --ruleset edge-asa.cfg"
    )]
    Audit(AuditArgs),

    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    #[command(
        after_help = "Examples:\n  scc-ports completions bash > /etc/bash_completion.d/scc-ports\n  \
            scc-ports completions zsh > \"${fpath[1]}/_scc-ports\"\n  \
            scc-ports completions fish > ~/.config/fish/completions/scc-ports.fish"
    )]
    Completions {
        /// The shell to write completions for
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The deployment file (TOML); the embedded all-in-one demo when omitted
    pub file: Option<PathBuf>,

    /// Show only this node (or client zone)
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// The deployment file (TOML); the embedded all-in-one demo when omitted
    pub file: Option<PathBuf>,

    /// Only flows whose sources include this zone
    #[arg(long, value_name = "ZONE")]
    pub from: Option<String>,

    /// Only flows to this node (or client zone)
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["node", "workstations", "network"])))]
pub struct FirewallArgs {
    /// The deployment file (TOML); the embedded all-in-one demo when omitted
    pub file: Option<PathBuf>,

    /// The firewall product to write rules for
    #[arg(long, value_name = "TARGET", value_parser = target_names())]
    pub target: String,

    /// The host firewall of this server (HAC node)
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,

    /// The agent workstations' firewall
    #[arg(long)]
    pub workstations: bool,

    /// A firewall between zones (forwarded traffic)
    #[arg(long)]
    pub network: bool,

    /// Host firewalls: a complete policy, or only the allow rules
    #[arg(long, value_enum, default_value_t = Policy::Drop)]
    pub policy: Policy,

    /// Write to FILE instead of standard output (--target aerleon: the directory DIR, required)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Instead of a whole ruleset: the changes that bring this exported ruleset to the plan
    /// (--target nftables: nft -j list ruleset or nft -a list ruleset; iptables: iptables-save;
    /// windows: the Windows Firewall JSON export of docs/audit.md; aerleon with --network: a
    /// Cisco ASA running-config or a PAN-OS set export)
    #[arg(long, value_name = "RULES", conflicts_with = "workstations")]
    pub diff: Option<PathBuf>,

    /// With --network --diff and an appliance's configuration (Cisco ASA running-config, PAN-OS
    /// set export; --target aerleon): which [firewalls.NAME] it is (needed when the file declares
    /// several)
    #[arg(long, value_name = "NAME", requires = "diff")]
    pub firewall: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// One line per flow, then the extra openings
    Table,
    /// {"summary": {...}, "flows": [...], "extra": [...]}
    Json,
    /// One row per flow and per extra opening, the deciding rule in full (spreadsheets, the
    /// firewall team)
    Csv,
    /// The same rows as a Markdown table (tickets, wikis)
    Markdown,
    /// SARIF 2.1.0 for GitHub code scanning: flows not admitted and openings beyond the
    /// plan at the ruleset's rule (docs/audit.md)
    Sarif,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["node", "network"])))]
pub struct AuditArgs {
    /// The deployment file (TOML); the embedded all-in-one demo when omitted
    pub file: Option<PathBuf>,

    /// The ruleset is this server's host firewall
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,

    /// The ruleset is a firewall between zones (forwarded traffic)
    #[arg(long)]
    pub network: bool,

    /// The exported ruleset (nft -j or nft text, iptables-save, Windows JSON, AWS JSON, firewalld
    /// text or its XML directory, or an appliance's configuration: Cisco ASA, PAN-OS, FortiOS,
    /// Juniper SRX)
    #[arg(long, value_name = "RULES")]
    pub ruleset: PathBuf,

    /// With --network and an appliance's configuration: which of the deployment's
    /// [firewalls.NAME] it is (needed when the file declares several)
    #[arg(long, value_name = "NAME")]
    pub firewall: Option<String>,

    /// Output format
    #[arg(long, value_enum, default_value_t = AuditFormat::Table)]
    pub format: AuditFormat,
}

fn target_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        crate::firewall::TARGETS
            .iter()
            .map(|t| clap::builder::PossibleValue::new(t.name()).help(t.about())),
    )
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("host").required(true).args(["node", "workstations"])))]
pub struct ListenArgs {
    /// The deployment file (TOML); the embedded all-in-one demo when omitted
    pub file: Option<PathBuf>,

    /// The node whose planned ports to bind
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,

    /// This host is an agent PC of client zone ZONE: bind its workstation ports (Communication
    /// Desktop's RTP/RTCP) on every address (or on --bind)
    #[arg(long, value_name = "ZONE")]
    pub workstations: Option<String>,

    /// Read the shared secret from FILE (else SCC_PORTS_SECRET, else a new one is printed)
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,

    /// How long to answer (e.g. 90s, 10m, 1h)
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub duration: humantime::Duration,

    /// Bind every port on this address instead of the planned ones (tests, one-machine trials)
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<std::net::IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeFormat {
    /// Ports grouped into ranges per status, a progress bar on a terminal
    Table,
    /// {"summary": {...}, "results": [...], "unexpected": [...]}
    Json,
    /// JUnit XML, one test case per port (for CI pipelines)
    Junit,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The deployment file (TOML); the embedded all-in-one demo when omitted
    pub file: Option<PathBuf>,

    /// The zone this prober runs in: flows whose sources include it are tested
    #[arg(long, value_name = "ZONE")]
    pub from: String,

    /// Only destinations on this node's addresses
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,

    /// Probe the workstation ports of the agent PC at ADDR (running `listen --workstations`)
    /// instead of the servers' ports (repeatable: one sample PC per zone or more)
    #[arg(long, value_name = "ADDR", conflicts_with = "node")]
    pub to_workstation: Vec<std::net::IpAddr>,

    /// Read the listener's secret from FILE (else SCC_PORTS_SECRET)
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,

    /// The longest wait for an answer before round trips are measured (adapts down after);
    /// 10ms to 60s. The whole run ends within (2 x waves of 512 probes + 2) x 4 attempts x timeout + 10 s
    #[arg(long, default_value = "500ms", value_name = "DURATION")]
    pub timeout: humantime::Duration,

    /// The address the zone's hosts are seen as (behind NAT): it must be inside the zone's
    /// CIDRs. Without it, the address this host reaches the targets from must be
    #[arg(long, value_name = "ADDR")]
    pub source: Option<std::net::IpAddr>,

    /// Also sweep every other TCP port (1-65535) of every node and unit address (with --node:
    /// the node's and its units'; with --to-workstation: the PCs') and list what accepts; an
    /// address that cannot be swept fails
    #[arg(long)]
    pub unexpected: bool,

    /// Output format
    #[arg(long, value_enum, default_value_t = ProbeFormat::Table)]
    pub format: ProbeFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// One block per finding, errors first, then a summary line
    Table,
    /// {"summary": {...}, "findings": [...]}
    Json,
    /// SARIF 2.1.0 for GitHub code scanning, at the deployment file's lines; a file that
    /// cannot be used gives its E0xx errors as results (and exit 2) (docs/checks.md)
    Sarif,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The deployment file (TOML); the embedded all-in-one demo when omitted
    pub file: Option<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = CheckFormat::Table)]
    pub format: CheckFormat,
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Show only this component (its id, e.g. `sip-bridge`)
    #[arg(long, value_name = "ID")]
    pub component: Option<String>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Verdict, failures with causes and fixes, the grouped matrix
    Table,
    /// Every planned port of every zone, the groups, the failures with fixes, the findings
    Json,
    /// JUnit XML: a test suite per zone, a test case per group of ports
    Junit,
    /// Markdown for a wiki or a ticket
    Markdown,
    /// One self-contained HTML page with an SVG picture of the system, printable
    Html,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The deployment file (TOML) the probes ran with
    pub file: PathBuf,

    /// Probe results (`scc-ports probe FILE --from ZONE --format json`), one per prober
    #[arg(value_name = "RESULT.json")]
    pub results: Vec<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,

    /// The firewall product the fixes are written for
    #[arg(long, value_name = "TARGET", value_parser = target_names(), default_value = "nftables")]
    pub target: String,

    /// A listener's output (repeatable): its `cannot bind` lines name who holds an open port
    #[arg(long, value_name = "FILE")]
    pub listen_log: Vec<PathBuf>,

    /// The zone a result file was made in, as the one who ran its prober knows it (repeatable;
    /// the playbook gives one per prober): a file naming another zone does not count
    #[arg(long, value_name = "FILE=ZONE", value_parser = file_zone)]
    pub expect_zone: Vec<(PathBuf, String)>,

    /// An audit result (`scc-ports audit … --format json`, of a node or a network firewall;
    /// repeatable): the report adds its flows not admitted and its openings beyond the plan, with
    /// the `firewall --diff` that fixes them (probe results are then optional)
    #[arg(long, value_name = "AUDIT.json")]
    pub audit: Vec<PathBuf>,

    /// An earlier report (`--format json`) or audit result: say what is newly failing, newly
    /// fixed, newly open beyond the plan and closed since (exit 1 when something got worse)
    #[arg(long, value_name = "OLD.json")]
    pub compare: Option<PathBuf>,

    /// Write to FILE instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `FILE=ZONE`, split at the last `=` (a zone name has none, a file name may).
fn file_zone(text: &str) -> Result<(PathBuf, String), String> {
    match text.rsplit_once('=') {
        Some((file, zone)) if !file.is_empty() && !zone.is_empty() => {
            Ok((PathBuf::from(file), zone.to_string()))
        }
        _ => Err(format!(
            "`{text}` is not FILE=ZONE (a result file and the zone its prober ran in)"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagramFormat {
    /// A Mermaid flowchart (renders in GitHub/GitLab Markdown)
    Mermaid,
    /// A Graphviz digraph
    Dot,
    /// A standalone SVG picture
    Svg,
}

#[derive(Debug, Args)]
pub struct DiagramArgs {
    /// The deployment file (TOML); the embedded all-in-one demo when omitted
    pub file: Option<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = DiagramFormat::Mermaid)]
    pub format: DiagramFormat,
}
