//! The in-memory ceiling of large-file ingest on one core: FastCDC alone, BLAKE3
//! alone, both (what ingest must do at least), and zstd on random and text data.
//! ci/bench-ingest.sh runs it to put lakectl's single-core MB/s beside the limit.
//!
//! Usage: cargo run --release --example ingest_ceiling [-- --mib N] [--json]

use std::time::Instant;

use lakefs::superblock::ChunkerParams;

fn data(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

fn text(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    let mut i = 0u64;
    while v.len() < n {
        v.extend_from_slice(format!("{i} 2026-11-21T14:00:{:02}Z unit lake-{}.service: state {}\n", i % 60, i % 17, i % 5).as_bytes());
        i += 1;
    }
    v.truncate(n);
    v
}

fn rate(bytes: usize, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    bytes as f64 / 1e6 / t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: usize = args.iter().position(|a| a == "--mib").and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok()).unwrap_or(256);
    let json = args.iter().any(|a| a == "--json");
    let n = mib << 20;
    let (rnd, txt) = (data(n, 42), text(n));
    let p = ChunkerParams::default();
    let cuts = |d: &[u8]| -> Vec<(usize, usize)> {
        let cdc = fastcdc::v2020::FastCDC::new(d, p.min as usize, p.avg as usize, p.max as usize);
        cdc.map(|c| (c.offset, c.length)).collect()
    };
    let mut chunks = Vec::new();
    let fastcdc = rate(n, || chunks = cuts(&rnd));
    let blake3 = rate(n, || {
        for (o, l) in &chunks {
            std::hint::black_box(blake3::hash(&rnd[*o..o + l]));
        }
    });
    let both = rate(n, || {
        for (o, l) in cuts(&rnd) {
            std::hint::black_box(blake3::hash(&rnd[o..o + l]));
        }
    });
    let zstd = |d: &[u8], level: i32| {
        let mut c = zstd::bulk::Compressor::new(level).expect("zstd");
        rate(d.len(), || {
            for ch in d.chunks(64 << 10) {
                std::hint::black_box(c.compress(ch).expect("compress"));
            }
        })
    };
    let (z3r, z3t) = (zstd(&rnd, 3), zstd(&txt, 3));
    if json {
        println!(
            "{{\"mib\":{mib},\"fastcdc_mbs\":{fastcdc:.0},\"blake3_mbs\":{blake3:.0},\"fastcdc_blake3_mbs\":{both:.0},\"zstd3_random_mbs\":{z3r:.0},\"zstd3_text_mbs\":{z3t:.0}}}"
        );
    } else {
        println!("one core, {mib} MiB in memory:");
        println!("  FastCDC v2020 16/64/256 KiB  {fastcdc:>7.0} MB/s");
        println!("  BLAKE3 per chunk             {blake3:>7.0} MB/s");
        println!("  FastCDC + BLAKE3             {both:>7.0} MB/s   <- the ingest ceiling without compression");
        println!("  zstd -3, random data         {z3r:>7.0} MB/s");
        println!("  zstd -3, log-like text       {z3t:>7.0} MB/s");
    }
}
