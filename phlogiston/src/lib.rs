//! Phlogiston (gas) metering for rhospace. The meter and cost table arrive with their issue.
