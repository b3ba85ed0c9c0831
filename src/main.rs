use clap::Parser;

fn main() {
    let cli = provision::cli::Cli::parse();
    std::process::exit(provision::commands::run(cli));
}
