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
