//! The reconnect storm at internet scale, in simulation (issue 16): N clients
//! whose broker restarts and then admits at most R hellos a second, for the
//! seeds' schedule, tether's default and tether with the broker's hint. Prints
//! the table of BENCHMARKS.md and draws attempts per 100 ms over time for the
//! three schedules in one SVG chart.
//!
//! `cargo run --release -p tether-bench --bin storm -- [--clients 100000]
//! [--rate 1000] [--horizon-s 1200] [--svg bench/storm.svg]`

use std::time::{Duration, Instant};

use plotters::prelude::*;
use tether_broker::core::HelloRate;
use tether_sim::storm::{admission_storm, AdmissionStorm, Schedule};

struct Options {
    clients: u64,
    rate: u32,
    horizon: Duration,
    svg: String,
}

fn options() -> Options {
    let mut o = Options {
        clients: 100_000,
        rate: 1_000,
        horizon: Duration::from_secs(1_200),
        svg: "bench/storm.svg".to_owned(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--clients" => o.clients = value.parse().expect("--clients N"),
            "--rate" => o.rate = value.parse().expect("--rate R"),
            "--horizon-s" => o.horizon = Duration::from_secs(value.parse().expect("--horizon-s S")),
            "--svg" => o.svg = value,
            other => panic!("unknown flag {other}"),
        }
    }
    o
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn main() {
    let o = options();
    let rate = HelloRate::per_second(o.rate);
    let mut runs = Vec::new();
    for schedule in Schedule::ALL {
        let started = Instant::now();
        let run = admission_storm(o.clients, rate, schedule, o.horizon);
        eprintln!(
            "{}: {} attempts, {} refused; simulated in {:.1} s of wall time",
            schedule.name(),
            run.attempts,
            run.refused,
            started.elapsed().as_secs_f64(),
        );
        runs.push(run);
    }
    println!(
        "{} clients, broker admitting {} hellos a second (burst {}) after its restart; ideal N / R = {}; R / 10 = {:.0} per 100 ms",
        o.clients,
        o.rate,
        rate.burst,
        secs(runs[0].ideal()),
        runs[0].admitted_per_window()
    );
    println!();
    println!("| schedule | every client open again after | vs. the ideal N / R | attempts wasted per client (most by one) | peak attempts per 100 ms | vs. R / 10 | peak after the first wave | vs. R / 10 |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &runs {
        let (after, ratio) = match r.all_open_after {
            Some(d) => (
                secs(d),
                format!("{:.2}×", d.as_secs_f64() / r.ideal().as_secs_f64()),
            ),
            None => (
                format!(
                    "not within {} ({} of {} open)",
                    secs(r.horizon),
                    r.open,
                    r.clients
                ),
                format!("> {:.1}×", r.horizon.as_secs_f64() / r.ideal().as_secs_f64()),
            ),
        };
        let window = r.admitted_per_window();
        let after_wave = r.peak_after_first_wave();
        println!(
            "| {} | {after} | {ratio} | {:.2} ({}) | {} | {:.1}× | {after_wave} | {:.1}× |",
            r.schedule.name(),
            r.wasted_per_client(),
            r.most_attempts.saturating_sub(1),
            r.peak,
            r.peak as f64 / window,
            after_wave as f64 / window,
        );
    }
    match chart(&o.svg, &runs) {
        Ok(()) => eprintln!("chart written to {}", o.svg),
        Err(e) => {
            eprintln!("chart not written: {e}");
            std::process::exit(1);
        }
    }
}

/// Attempts per 100 ms over time, the three schedules in one chart, on a log
/// scale (the seeds' herd is four orders of magnitude above the hint's line);
/// an empty window sits on the bottom of the chart.
fn chart(path: &str, runs: &[AdmissionStorm]) -> Result<(), Box<dyn std::error::Error>> {
    let floor = 0.5_f64;
    // Up to a little past the last schedule to finish: the seeds' herd, which
    // does not finish, goes on beyond the chart every 30 s.
    let finished = runs
        .iter()
        .filter_map(|r| r.all_open_after)
        .max()
        .map(|d| d.as_secs_f64() * 1.3);
    let longest = runs
        .iter()
        .map(|r| r.attempts_per_window.len())
        .max()
        .unwrap_or(1) as f64
        / 10.0;
    let x_max = finished.unwrap_or(longest).min(longest).max(1.0);
    let y_max = runs.iter().map(|r| r.peak).max().unwrap_or(1) as f64 * 2.0;
    let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let first = &runs[0];
    let caption = format!(
        "{} clients, broker restart, {} hellos/s admitted: attempts per 100 ms",
        first.clients, first.rate
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, (floor..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds after the restart")
        .y_desc("attempts per 100 ms (log scale)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    let colours = [RED, BLUE, RGBColor(0, 140, 0)];
    for (run, colour) in runs.iter().zip(colours) {
        let points = run
            .attempts_per_window
            .iter()
            .enumerate()
            .map(|(w, n)| (w as f64 / 10.0, (*n as f64).max(floor)))
            .take_while(|(x, _)| *x <= x_max);
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(match run.all_open_after {
                Some(d) => format!("{}: all open after {:.0} s", run.schedule.name(), d.as_secs_f64()),
                None => format!(
                    "{}: {} of {} open after {:.0} s",
                    run.schedule.name(),
                    run.open,
                    run.clients,
                    run.horizon.as_secs_f64()
                ),
            })
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    let admitted = first.admitted_per_window();
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, admitted), (x_max, admitted)],
            BLACK.mix(0.6).stroke_width(1),
        ))?
        .label(format!(
            "R / 10 = {admitted:.0}: what the broker admits per 100 ms"
        ))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.6)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
