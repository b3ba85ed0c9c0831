//! The SDK clients, configured the standard AWS way (environment, profile, SSO; region from
//! the `cloud` var or the usual lookup; `AWS_ENDPOINT_URL` for AWS-compatible endpoints such
//! as moto), with rustls on ring for HTTPS.

/// The clients of one stack.
pub struct Clients {
    /// EC2.
    pub ec2: aws_sdk_ec2::Client,
    /// S3.
    pub s3: aws_sdk_s3::Client,
    /// IAM.
    pub iam: aws_sdk_iam::Client,
    /// EC2 Auto Scaling.
    pub asg: aws_sdk_autoscaling::Client,
    /// CloudWatch Logs.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// The region in use.
    pub region: String,
}

/// Builds the clients.
pub async fn connect(region: Option<&str>) -> Clients {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    let conf = loader.load().await;
    let region = conf.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
    // A custom endpoint (moto, MinIO) serves buckets by path, not by host name.
    let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&conf).force_path_style(path_style).build());
    Clients {
        ec2: aws_sdk_ec2::Client::new(&conf),
        s3,
        iam: aws_sdk_iam::Client::new(&conf),
        asg: aws_sdk_autoscaling::Client::new(&conf),
        logs: aws_sdk_cloudwatchlogs::Client::new(&conf),
        region,
    }
}
