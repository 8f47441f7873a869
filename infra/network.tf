# One VPC: a subnet for Cloud Run Direct VPC egress (no Serverless VPC Access connector to run and
# pay for) and the Chroma VM; private services access for Cloud SQL and Memorystore, which get
# private IPs only; Cloud NAT for outbound internet (ask -> Gemini, the Chroma VM -> its image).

locals {
  zone = var.zone != "" ? var.zone : "${var.region}-b"
}

resource "google_compute_network" "main" {
  name                    = var.name_prefix
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.apis]
}

resource "google_compute_subnetwork" "run" {
  name          = "${var.name_prefix}-run"
  region        = var.region
  network       = google_compute_network.main.id
  ip_cidr_range = var.subnet_cidr

  # ask routes all its egress through the VPC (to reach internal-ingress services); Google APIs and
  # *.run.app stay reachable through Private Google Access.
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.1
  }
}

# Private services access: one peering for Cloud SQL and Memorystore.
resource "google_compute_global_address" "private_services" {
  name          = "${var.name_prefix}-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = var.private_services_prefix_length
  network       = google_compute_network.main.id
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.main.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]
}

# Outbound internet without public IPs.
resource "google_compute_router" "main" {
  name    = "${var.name_prefix}-router"
  region  = var.region
  network = google_compute_network.main.id
}

resource "google_compute_router_nat" "main" {
  name                               = "${var.name_prefix}-nat"
  router                             = google_compute_router.main.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.run.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Chroma: only the functions' subnet may reach its port.
resource "google_compute_firewall" "chroma_from_run" {
  name          = "${var.name_prefix}-chroma-from-run"
  network       = google_compute_network.main.id
  direction     = "INGRESS"
  source_ranges = [var.subnet_cidr]
  target_tags   = ["${var.name_prefix}-chroma"]

  allow {
    protocol = "tcp"
    ports    = ["8000"]
  }
}

# Operators reach the Chroma VM by SSH through IAP only (no public IP).
resource "google_compute_firewall" "chroma_iap_ssh" {
  name          = "${var.name_prefix}-chroma-iap-ssh"
  network       = google_compute_network.main.id
  direction     = "INGRESS"
  source_ranges = ["35.235.240.0/20"]
  target_tags   = ["${var.name_prefix}-chroma"]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}
