//! Run the `check` command on a config file: `cargo run -p crossline-config --example check_example -- FILE [YYYY-MM-DD]`.
fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "examples/agent.toml".into());
    let today = args
        .next()
        .and_then(|d| {
            let mut p = d.split('-').map(|x| x.parse::<i64>().ok());
            let (y, m, dd) = (p.next()??, p.next()??, p.next()??);
            crossline_config::time::Date::new(y as i32, m as u8, dd as u8)
        })
        .unwrap_or_else(crossline_config::today_beijing);
    std::process::exit(crossline_config::check_command(
        std::path::Path::new(&path),
        today,
    ));
}
