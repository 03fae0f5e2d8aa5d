"""What a CRM connection needs besides one HTTP call: staying within the
CRM's limits, keeping an OAuth token fresh, and not hammering a CRM that is
down. I/O lives here; the ``convoso_connect`` node builds these objects and
``http.call.send`` consults them on every attempt."""
