//! The S3 backend across a server outage: Garage killed in the middle of a multipart upload and
//! restarted; the upload's parts are retried and the object completes intact.

use std::time::Duration;

use bytes::Bytes;
use holdfast::storage::{self, Credentials, StorageOptions};
use holdfast_testkit::GarageServer;
use rand::RngCore;
use sha2::{Digest, Sha256};

#[test]
fn multipart_upload_survives_a_server_restart() {
    let mut garage = GarageServer::start();
    let opts = StorageOptions {
        credentials: Some(Credentials {
            access_key_id: garage.access_key_id().to_string(),
            secret_access_key: garage.secret_access_key().to_string(),
            session_token: None,
        }),
        ..StorageOptions::default()
    };
    let s = storage::open(&garage.repo_url("faults"), &opts).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut hash = Sha256::new();
    let mut block = vec![0u8; 1024 * 1024];
    let mut w = rt.block_on(s.writer("obj")).unwrap();
    for i in 0..48 {
        if i == 20 {
            garage.kill();
            let restart = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(2));
                garage.restart();
                garage
            });
            for _ in 0..8 {
                rand::thread_rng().fill_bytes(&mut block);
                hash.update(&block);
                rt.block_on(w.write(Bytes::copy_from_slice(&block)))
                    .unwrap_or_else(|e| panic!("write during the outage: {e:?}"));
            }
            garage = restart.join().unwrap();
            continue;
        }
        if (21..28).contains(&i) {
            continue;
        }
        rand::thread_rng().fill_bytes(&mut block);
        hash.update(&block);
        rt.block_on(w.write(Bytes::copy_from_slice(&block)))
            .unwrap_or_else(|e| panic!("write: {e:?}"));
    }
    rt.block_on(w.close())
        .unwrap_or_else(|e| panic!("close: {e:?}"));
    let back = rt.block_on(s.get("obj")).unwrap();
    assert_eq!(Sha256::digest(&back), hash.finalize());
    drop(garage);
}

/// A storage handle to `garage`'s bucket through `proxy` (requests go to the proxy's port).
fn through_proxy(
    garage: &GarageServer,
    proxy: &holdfast_testkit::FaultProxy,
    prefix: &str,
    request_timeout: Duration,
) -> std::sync::Arc<dyn holdfast::storage::Storage> {
    let opts = StorageOptions {
        credentials: Some(Credentials {
            access_key_id: garage.access_key_id().to_string(),
            secret_access_key: garage.secret_access_key().to_string(),
            session_token: None,
        }),
        request_timeout,
        ..StorageOptions::default()
    };
    let url = format!(
        "s3://{}/{prefix}?endpoint=http://127.0.0.1:{}&region={}",
        garage.bucket(),
        proxy.port(),
        garage.region()
    );
    storage::open(&url, &opts).unwrap()
}

/// A connection cut, reset or stalled in the middle of a multipart part (the proxy trips once,
/// at a seeded offset inside the upload's body bytes) is retried by the part's retry layer: the
/// streaming write completes and the object is intact. Seeds 1..=3 by default; 25 with
/// HOLDFAST_LONG_TESTS=1.
#[test]
fn a_cut_in_the_middle_of_a_multipart_part_is_retried() {
    use holdfast_testkit::{Direction, Fault, FaultProxy};
    let garage = GarageServer::start();
    let target: std::net::SocketAddr = garage
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(target);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let seeds: u64 = if std::env::var_os("HOLDFAST_LONG_TESTS").is_some() {
        25
    } else {
        3
    };
    // 20 MiB: three parts of 8 MiB (the last one short).
    const OBJECT: usize = 20 * 1024 * 1024;
    for seed in 1..=seeds {
        let s = through_proxy(&garage, &proxy, "cut", Duration::from_secs(5));
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        let mut data = vec![0u8; OBJECT];
        rng.fill_bytes(&mut data);
        let base = proxy.bytes(Direction::Upstream);
        // Somewhere in the upload's bytes, past its first request's headers.
        let offset = 4096 + rand::Rng::gen_range(&mut rng, 0..(OBJECT as u64 - 8192));
        let fault = match seed % 3 {
            0 => Fault::Cut {
                direction: Direction::Upstream,
                after: offset,
            },
            1 => Fault::Reset {
                direction: Direction::Upstream,
                after: offset,
            },
            _ => Fault::Stall {
                direction: Direction::Upstream,
                after: offset,
            },
        };
        let tripped = proxy.tripped();
        proxy.set_fault_once(fault);
        let path = format!("obj-{seed}");
        rt.block_on(async {
            let mut w = s.writer(&path).await.unwrap();
            for piece in data.chunks(1024 * 1024) {
                w.write(Bytes::copy_from_slice(piece))
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed} {fault:?}: write: {e:?}"));
            }
            w.close()
                .await
                .unwrap_or_else(|e| panic!("seed {seed} {fault:?}: close: {e:?}"));
        });
        assert_eq!(
            proxy.tripped(),
            tripped + 1,
            "seed {seed}: the fault {fault:?} never tripped ({} bytes went up)",
            proxy.bytes(Direction::Upstream) - base
        );
        // A stall leaves its connection hanging until switched off; the retry went around it.
        proxy.set_fault(Fault::Pass);
        let back = rt.block_on(s.get(&path)).unwrap();
        assert!(
            back.len() == data.len() && back[..] == data[..],
            "seed {seed} {fault:?}: the object differs"
        );
    }
}
