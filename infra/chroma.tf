# Chroma on a small Compute Engine VM with a persistent disk, reachable only from the functions'
# subnet (network.tf) at a fixed internal address.
#
# Why a VM and not Cloud Run + a GCS FUSE volume:
#   - Chroma keeps its data in SQLite plus HNSW segment files that it rewrites in place. GCS FUSE
#     has no POSIX file locking and turns small random writes into whole-object rewrites, which
#     SQLite cannot run on safely; a persistent disk is an ordinary block device.
#   - Chroma is a single writer: several Cloud Run instances (scale-out, or an old and a new
#     revision during a rollout) would share one store; a VM is exactly one process.
#   - Chroma's data is a rebuildable mirror of PostgreSQL (pgvector holds the same chunks and
#     embeddings, and retrieve falls back to pgvector when Chroma is down). So the VM needs no HA,
#     replica or backup: one e2-small and a zonal disk. If the VM or disk is lost, recreate it and
#     re-sync from PostgreSQL. The cost of this choice is one always-on VM (~a few dollars/month).

locals {
  chroma_ip  = cidrhost(var.subnet_cidr, 10)
  chroma_url = "http://${local.chroma_ip}:8000"

  chroma_cloud_init = <<-EOT
    #cloud-config
    # Container-Optimized OS: format the data disk on first boot only, mount it, run Chroma.
    bootcmd:
      - blkid /dev/disk/by-id/google-chroma-data || mkfs.ext4 -m 0 -E lazy_itable_init=0,lazy_journal_init=0,discard /dev/disk/by-id/google-chroma-data
      - mkdir -p /mnt/disks/chroma
      - mountpoint -q /mnt/disks/chroma || mount -t ext4 -o discard,defaults /dev/disk/by-id/google-chroma-data /mnt/disks/chroma
    write_files:
      - path: /etc/systemd/system/chroma.service
        permissions: "0644"
        owner: root
        content: |
          [Unit]
          Description=Chroma vector store
          Wants=network-online.target docker.service
          After=network-online.target docker.service
          [Service]
          # COS's host firewall only admits SSH by default.
          ExecStartPre=/sbin/iptables -w -C INPUT -p tcp --dport 8000 -j ACCEPT || /sbin/iptables -w -A INPUT -p tcp --dport 8000 -j ACCEPT
          ExecStartPre=-/usr/bin/docker rm -f chroma
          ExecStart=/usr/bin/docker run --rm --name chroma --network host -v /mnt/disks/chroma:/data -e ANONYMIZED_TELEMETRY=false ${var.chroma_image}
          ExecStop=/usr/bin/docker stop chroma
          Restart=always
          RestartSec=5
          [Install]
          WantedBy=multi-user.target
    runcmd:
      - systemctl daemon-reload
      - systemctl start chroma.service
  EOT
}

resource "google_compute_address" "chroma" {
  name         = "${var.name_prefix}-chroma"
  region       = var.region
  address_type = "INTERNAL"
  subnetwork   = google_compute_subnetwork.run.id
  address      = local.chroma_ip
}

resource "google_compute_disk" "chroma" {
  name = "${var.name_prefix}-chroma-data"
  zone = local.zone
  type = "pd-balanced"
  size = var.chroma_disk_size_gb

  labels = { app = var.name_prefix }

  depends_on = [google_project_service.apis]
}

resource "google_compute_instance" "chroma" {
  name                      = "${var.name_prefix}-chroma"
  zone                      = local.zone
  machine_type              = var.chroma_machine_type
  tags                      = ["${var.name_prefix}-chroma"]
  allow_stopping_for_update = true

  boot_disk {
    initialize_params {
      image = "cos-cloud/cos-stable"
      size  = 10
    }
  }

  attached_disk {
    source      = google_compute_disk.chroma.id
    device_name = "chroma-data"
  }

  # No access_config: no public IP. Outbound (image pull) goes through Cloud NAT.
  network_interface {
    subnetwork = google_compute_subnetwork.run.id
    network_ip = google_compute_address.chroma.address
  }

  service_account {
    email  = google_service_account.chroma.email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    user-data                 = local.chroma_cloud_init
    google-logging-enabled    = "true"
    google-monitoring-enabled = "true"
    enable-oslogin            = "TRUE"
    block-project-ssh-keys    = "true"
  }

  labels = { app = var.name_prefix }

  depends_on = [google_compute_router_nat.main]
}
