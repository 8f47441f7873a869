# Memorystore for Redis, basic tier (cache, conversation memory, rate limits: all of it may be lost,
# Quarry answers without Redis), reached over private services access with AUTH on.
# In-transit encryption is off because the redis crate is built without TLS (features in the
# workspace Cargo.toml); traffic stays inside the VPC peering.

resource "google_redis_instance" "main" {
  name               = "${var.name_prefix}-redis"
  region             = var.region
  tier               = "BASIC"
  memory_size_gb     = var.redis_memory_size_gb
  redis_version      = "REDIS_7_2"
  authorized_network = google_compute_network.main.id
  connect_mode       = "PRIVATE_SERVICE_ACCESS"

  auth_enabled            = true
  transit_encryption_mode = "DISABLED"

  redis_configs = {
    maxmemory-policy = "allkeys-lru"
  }

  depends_on = [google_service_networking_connection.private_services]
}

locals {
  redis_url = format(
    "redis://:%s@%s:%d/0",
    google_redis_instance.main.auth_string,
    google_redis_instance.main.host,
    google_redis_instance.main.port,
  )
}
