# Inputs. No secret values here: secrets are generated (database password) or read from managed
# services (Redis AUTH) straight into Secret Manager, or created empty and filled out of band
# (JWT secret, JWKS URL, Gemini API key; see docs/deploy.md).

variable "project_id" {
  description = "Google Cloud project ID to deploy into."
  type        = string
}

variable "region" {
  description = "Region for Cloud Run, Cloud SQL, Memorystore, the uploads bucket and the Eventarc trigger (they must share it)."
  type        = string
  default     = "europe-west1"
}

variable "zone" {
  description = "Zone of the Chroma VM and its disk; empty means \"<region>-b\"."
  type        = string
  default     = ""
}

variable "name_prefix" {
  description = "Prefix of every resource name (services, service accounts, secrets, network). Must match cloudbuild.yaml's _PREFIX."
  type        = string
  default     = "quarry"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))
    error_message = "name_prefix must be 2-15 characters: lowercase letters, digits and hyphens, starting with a letter (service account IDs are limited to 30 characters)."
  }
}

variable "images" {
  description = "Initial container image per function (keys: auth, ask, sql-exec, retrieve, ingest, index-advisor, quarry). Cloud Build rolls out new images afterwards; Terraform ignores image changes made by it. The default placeholder answers 200 on every path, so the first apply succeeds before any image is built."
  type        = map(string)
  default = {
    auth          = "us-docker.pkg.dev/cloudrun/container/hello"
    ask           = "us-docker.pkg.dev/cloudrun/container/hello"
    sql-exec      = "us-docker.pkg.dev/cloudrun/container/hello"
    retrieve      = "us-docker.pkg.dev/cloudrun/container/hello"
    ingest        = "us-docker.pkg.dev/cloudrun/container/hello"
    index-advisor = "us-docker.pkg.dev/cloudrun/container/hello"
    quarry        = "us-docker.pkg.dev/cloudrun/container/job"
  }

  validation {
    condition     = length(setsubtract(["auth", "ask", "sql-exec", "retrieve", "ingest", "index-advisor", "quarry"], keys(var.images))) == 0
    error_message = "images must have an entry for auth, ask, sql-exec, retrieve, ingest, index-advisor and quarry."
  }
}

variable "subnet_cidr" {
  description = "CIDR of the subnet used by Cloud Run Direct VPC egress and the Chroma VM. Direct VPC egress takes up to two addresses per instance, so keep it at /24 or larger."
  type        = string
  default     = "10.10.0.0/24"
}

variable "private_services_prefix_length" {
  description = "Prefix length of the range reserved for private services access (Cloud SQL and Memorystore peering)."
  type        = number
  default     = 20
}

variable "db_tier" {
  description = "Cloud SQL machine tier."
  type        = string
  default     = "db-custom-1-3840"
}

variable "db_disk_size_gb" {
  description = "Initial Cloud SQL disk size in GB (grows automatically)."
  type        = number
  default     = 20
}

variable "db_high_availability" {
  description = "Regional (HA) Cloud SQL instance instead of zonal."
  type        = bool
  default     = false
}

variable "db_deletion_protection" {
  description = "Protect the Cloud SQL instance against deletion by Terraform and the API."
  type        = bool
  default     = true
}

variable "db_pool_size" {
  description = "PG_POOL_SIZE per Cloud Run instance. Keep max instances x pool size under the Cloud SQL connection limit."
  type        = number
  default     = 5
}

variable "redis_memory_size_gb" {
  description = "Memorystore for Redis capacity in GB (basic tier)."
  type        = number
  default     = 1
}

variable "chroma_machine_type" {
  description = "Machine type of the Chroma VM."
  type        = string
  default     = "e2-small"
}

variable "chroma_disk_size_gb" {
  description = "Size of the Chroma data disk in GB."
  type        = number
  default     = 20
}

variable "chroma_image" {
  description = "Chroma server container image (v2 API; same line as scripts/install.sh pins)."
  type        = string
  default     = "chromadb/chroma:1.5.9"
}

variable "scaling" {
  description = "Min and max Cloud Run instances per function (keys as in images, without quarry)."
  type        = map(object({ min = number, max = number }))
  default = {
    auth          = { min = 0, max = 10 }
    ask           = { min = 1, max = 10 }
    sql-exec      = { min = 0, max = 10 }
    retrieve      = { min = 0, max = 10 }
    ingest        = { min = 0, max = 5 }
    index-advisor = { min = 0, max = 1 }
  }
}

variable "extra_env" {
  description = "Extra plain environment variables per function (e.g. peer URLs for ask, CORS_ALLOWED_ORIGINS, RUST_LOG). Never secrets."
  type        = map(map(string))
  default     = {}
}

variable "enable_jwks" {
  description = "Mount the jwks-url secret as JWT_JWKS_URL (RS256/ES256 tokens from an identity provider). The secret must have a version first."
  type        = bool
  default     = false
}

variable "enable_gemini" {
  description = "Mount the gemini-api-key secret as GEMINI_API_KEY into ask. The secret must have a version first."
  type        = bool
  default     = true
}

variable "uploads_bucket_name" {
  description = "Name of the uploads bucket; empty means \"<project>-<prefix>-uploads\"."
  type        = string
  default     = ""
}

variable "uploads_noncurrent_versions" {
  description = "How many noncurrent versions of an uploaded object to keep."
  type        = number
  default     = 3
}

variable "ingest_event_path" {
  description = "Path of the ingest route that receives the Eventarc CloudEvent (set to the route the ingest function serves)."
  type        = string
  default     = "/v1/events"
}

variable "advice_schedule" {
  description = "Cron schedule of the nightly index-advice run."
  type        = string
  default     = "0 3 * * *"
}

variable "advice_time_zone" {
  description = "Time zone of advice_schedule."
  type        = string
  default     = "Etc/UTC"
}
