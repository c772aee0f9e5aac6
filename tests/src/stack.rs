//! The seed stack in the emulator: a VPC with subnets in two AZs, an ALB and
//! its target group, a managed ASG `web` (2 instances) and an unmanaged ASG
//! `legacy` (1 instance) behind it, and the report topic with an SQS
//! subscriber that reads what subscribers would receive.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag};
use aws_sdk_ec2::types::{InstanceType, RequestLaunchTemplateData};
use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, ProtocolEnum, TargetTypeEnum};
use ballast::report::Report;
use serde_json::Value;

pub const MANAGED_ASG: &str = "web";
pub const UNMANAGED_ASG: &str = "legacy";
pub const AZS: [&str; 2] = ["us-east-1a", "us-east-1b"];
/// The lease table, as the template creates it (`resource` key, `expires`
/// TTL).
pub const LEASE_TABLE: &str = "ballast-leases";

pub struct Stack {
    pub ec2: aws_sdk_ec2::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub vpc_id: String,
    /// (subnet id, AZ), one per AZ of [`AZS`].
    pub subnets: Vec<(String, String)>,
    pub lb_arn: String,
    pub tg_arn: String,
    pub topic_arn: String,
    pub queue_url: String,
    pub sdk_config: SdkConfig,
}

/// An HTTP instance target group in `vpc_id` (health checks on `/health`);
/// its ARN.
async fn create_target_group(
    elbv2: &aws_sdk_elasticloadbalancingv2::Client,
    vpc_id: &str,
    name: &str,
) -> String {
    elbv2
        .create_target_group()
        .name(name)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id(vpc_id)
        .target_type(TargetTypeEnum::Instance)
        .health_check_path("/health")
        .send()
        .await
        .expect("CreateTargetGroup")
        .target_groups()[0]
        .target_group_arn()
        .expect("tg arn")
        .to_string()
}

/// The lease table of the template (`LeaseTable`): key `resource` (S),
/// on-demand, TTL on `expires`.
pub async fn create_lease_table(conf: &SdkConfig) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    };
    let dynamodb = aws_sdk_dynamodb::Client::new(conf);
    dynamodb
        .create_table()
        .table_name(LEASE_TABLE)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(ballast::aws::leases::KEY)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(ballast::aws::leases::KEY)
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("CreateTable");
    dynamodb
        .update_time_to_live()
        .table_name(LEASE_TABLE)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(ballast::aws::leases::EXPIRES)
                .enabled(true)
                .build()
                .expect("ttl"),
        )
        .send()
        .await
        .expect("UpdateTimeToLive");
}

/// An SNS message as an SQS subscriber receives it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub subject: String,
    pub attributes: BTreeMap<String, String>,
    pub report: Report,
    /// The SNS envelope, exactly as delivered.
    pub raw: Value,
}

impl Stack {
    pub async fn seed(conf: &SdkConfig) -> Stack {
        let ec2 = aws_sdk_ec2::Client::new(conf);
        let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(conf);
        let autoscaling = aws_sdk_autoscaling::Client::new(conf);
        let sns = aws_sdk_sns::Client::new(conf);
        let sqs = aws_sdk_sqs::Client::new(conf);

        let vpc_id = ec2
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await
            .expect("CreateVpc")
            .vpc
            .and_then(|v| v.vpc_id)
            .expect("vpc id");
        let mut subnets = vec![];
        for (i, az) in AZS.iter().enumerate() {
            let id = create_subnet(&ec2, &vpc_id, az, i + 1).await;
            subnets.push((id, az.to_string()));
        }
        let subnet_ids: Vec<String> = subnets.iter().map(|(id, _)| id.clone()).collect();

        let image_id = ec2
            .describe_images()
            .owners("amazon")
            .send()
            .await
            .expect("DescribeImages")
            .images()
            .iter()
            .find_map(|i| i.image_id().map(str::to_string))
            .expect("moto ships AMIs");
        ec2.create_launch_template()
            .launch_template_name("web")
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .image_id(image_id)
                    .instance_type(InstanceType::T3Micro)
                    .build(),
            )
            .send()
            .await
            .expect("CreateLaunchTemplate");

        let lb_arn = elbv2
            .create_load_balancer()
            .name("web-alb")
            .set_subnets(Some(subnet_ids.clone()))
            .send()
            .await
            .expect("CreateLoadBalancer")
            .load_balancers()[0]
            .load_balancer_arn()
            .expect("lb arn")
            .to_string();
        let tg_arn = create_target_group(&elbv2, &vpc_id, "web-tg").await;
        elbv2
            .create_listener()
            .load_balancer_arn(&lb_arn)
            .protocol(ProtocolEnum::Http)
            .port(80)
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(&tg_arn)
                    .build(),
            )
            .send()
            .await
            .expect("CreateListener");

        let stack = Stack {
            ec2,
            elbv2,
            autoscaling,
            sns,
            sqs,
            vpc_id,
            subnets,
            lb_arn,
            tg_arn,
            topic_arn: String::new(),
            queue_url: String::new(),
            sdk_config: conf.clone(),
        };
        stack
            .create_asg(MANAGED_ASG, 2, &[("ballast:managed", "true")])
            .await;
        stack
            .create_asg(UNMANAGED_ASG, 1, &[("team", "legacy")])
            .await;
        let (topic_arn, queue_url) = stack.create_report_topic().await;
        create_lease_table(conf).await;
        Stack {
            topic_arn,
            queue_url,
            ..stack
        }
    }

    /// The lease items Ballast left in the table, live or expired:
    /// (resource, holder, expires).
    pub async fn leases(&self) -> Vec<ballast::aws::leases::Held> {
        let dynamodb =
            aws_sdk_dynamodb::Client::from_conf(aws_sdk_dynamodb::Config::from(&self.sdk_config));
        ballast::aws::leases::list(&dynamodb, LEASE_TABLE)
            .await
            .expect("Scan of the lease table")
    }

    /// A lease item as another invocation would have written it.
    pub async fn put_lease(&self, resource: &str, holder: &str, expires: i64) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.sdk_config);
        let s = |v: &str| AttributeValue::S(v.to_string());
        dynamodb
            .put_item()
            .table_name(LEASE_TABLE)
            .item(ballast::aws::leases::KEY, s(resource))
            .item("holder", s(holder))
            .item("function", s("az-impairment"))
            .item("taken", AttributeValue::N((expires - 20).to_string()))
            .item(
                ballast::aws::leases::EXPIRES,
                AttributeValue::N(expires.to_string()),
            )
            .send()
            .await
            .expect("PutItem");
    }

    async fn create_asg(&self, name: &str, size: i32, tags: &[(&str, &str)]) {
        let zones: Vec<&str> = self.subnets.iter().map(|(id, _)| id.as_str()).collect();
        self.create_asg_in(name, size, &zones, tags).await;
    }

    /// An ASG with `size` instances in the given subnets.
    pub async fn create_asg_in(
        &self,
        name: &str,
        size: i32,
        zones: &[&str],
        tags: &[(&str, &str)],
    ) {
        self.create_asg_behind(name, size, zones, tags, &self.tg_arn)
            .await;
    }

    /// A managed ASG `name` of `size` instances in both AZs behind a target
    /// group of its own (`<name>-tg`), whose ARN is returned: one service
    /// of a larger fleet.
    pub async fn add_service(&self, name: &str, size: i32) -> String {
        let tg_arn = create_target_group(&self.elbv2, &self.vpc_id, &format!("{name}-tg")).await;
        let zones: Vec<&str> = self.subnets.iter().map(|(id, _)| id.as_str()).collect();
        self.create_asg_behind(name, size, &zones, &[("ballast:managed", "true")], &tg_arn)
            .await;
        tg_arn
    }

    async fn create_asg_behind(
        &self,
        name: &str,
        size: i32,
        zones: &[&str],
        tags: &[(&str, &str)],
        tg_arn: &str,
    ) {
        let mut req = self
            .autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(name)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_name("web")
                    .version("$Latest")
                    .build(),
            )
            .min_size(size)
            .max_size(size * 2)
            .desired_capacity(size)
            .vpc_zone_identifier(zones.join(","))
            .target_group_arns(tg_arn)
            .health_check_type("ELB")
            .health_check_grace_period(60);
        for (k, v) in tags {
            req = req.tags(
                Tag::builder()
                    .key(*k)
                    .value(*v)
                    .resource_id(name)
                    .resource_type("auto-scaling-group")
                    .propagate_at_launch(false)
                    .build(),
            );
        }
        req.send().await.expect("CreateAutoScalingGroup");
    }

    async fn create_report_topic(&self) -> (String, String) {
        let topic_arn = self
            .sns
            .create_topic()
            .name("ballast-reports")
            .send()
            .await
            .expect("CreateTopic")
            .topic_arn
            .expect("topic arn");
        let queue_url = self
            .subscribe_queue(&topic_arn, "ballast-reports-subscriber", None)
            .await;
        (topic_arn, queue_url)
    }

    /// A new SQS queue subscribed to `topic_arn`, with a filter policy on
    /// the message attributes when given; its URL.
    pub async fn subscribe_queue(
        &self,
        topic_arn: &str,
        name: &str,
        filter_policy: Option<&str>,
    ) -> String {
        let queue_url = self
            .sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .expect("queue url");
        let queue_arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("queue arn");
        let mut subscribe = self
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn);
        if let Some(policy) = filter_policy {
            subscribe = subscribe.attributes("FilterPolicy", policy);
        }
        subscribe.send().await.expect("Subscribe");
        queue_url
    }

    /// Every SNS envelope waiting in the queue (received and deleted).
    pub async fn drain(&self, queue_url: &str) -> Vec<Value> {
        let mut out = vec![];
        loop {
            let msgs = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(if out.is_empty() { 1 } else { 0 })
                .send()
                .await
                .expect("ReceiveMessage")
                .messages
                .unwrap_or_default();
            if msgs.is_empty() {
                return out;
            }
            for m in msgs {
                let body = m.body().unwrap_or_default();
                out.push(serde_json::from_str(body).expect("SNS envelope is JSON"));
                if let Some(h) = m.receipt_handle() {
                    let _ = self
                        .sqs
                        .delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(h)
                        .send()
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Another subnet of the stack's VPC, `10.0.<n>.0/24` in `az`.
    pub async fn add_subnet(&self, az: &str, n: usize) -> String {
        create_subnet(&self.ec2, &self.vpc_id, az, n).await
    }

    pub async fn group(&self, asg: &str) -> aws_sdk_autoscaling::types::AutoScalingGroup {
        self.autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(asg)
            .send()
            .await
            .expect("DescribeAutoScalingGroups")
            .auto_scaling_groups()[0]
            .clone()
    }

    /// The ASG's subnets, sorted.
    pub async fn subnets_of(&self, asg: &str) -> Vec<String> {
        let mut subnets: Vec<String> = self
            .group(asg)
            .await
            .vpc_zone_identifier()
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        subnets.sort();
        subnets
    }

    pub async fn tag_of(&self, asg: &str, key: &str) -> Option<String> {
        self.group(asg)
            .await
            .tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value().map(str::to_string))
    }

    /// Writes a tag on a group by hand, as an operator or another
    /// invocation would.
    pub async fn tag_group(&self, asg: &str, key: &str, value: &str) {
        self.autoscaling
            .create_or_update_tags()
            .tags(
                aws_sdk_autoscaling::types::Tag::builder()
                    .resource_id(asg)
                    .resource_type("auto-scaling-group")
                    .key(key)
                    .value(value)
                    .propagate_at_launch(false)
                    .build(),
            )
            .send()
            .await
            .expect("CreateOrUpdateTags");
    }

    /// The subnet of the stack in `az`.
    pub fn subnet_in(&self, az: &str) -> String {
        self.subnets
            .iter()
            .find(|(_, z)| z == az)
            .map(|(id, _)| id.clone())
            .expect("a subnet in that AZ")
    }

    /// Instance IDs of an ASG, in a stable order.
    pub async fn instances(&self, asg: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(asg)
            .send()
            .await
            .expect("DescribeAutoScalingGroups")
            .auto_scaling_groups()
            .iter()
            .flat_map(|g| g.instances())
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        ids.sort();
        ids
    }

    /// Stops instances: ELB then reports them `unused` / `Target.InvalidState`.
    pub async fn stop(&self, ids: &[String]) {
        self.ec2
            .stop_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .expect("StopInstances");
    }

    /// Starts stopped instances: ELB reports them `healthy` again (the fix
    /// rolled out).
    pub async fn start(&self, ids: &[String]) {
        self.ec2
            .start_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .expect("StartInstances");
    }

    /// The ASG replaces an instance, as it does one marked unhealthy: a new
    /// instance, and the old one terminated and deregistered from the
    /// target group (moto keeps a terminated target registered).
    pub async fn replace(&self, id: &str) {
        self.autoscaling
            .terminate_instance_in_auto_scaling_group()
            .instance_id(id)
            .should_decrement_desired_capacity(false)
            .send()
            .await
            .expect("TerminateInstanceInAutoScalingGroup");
        self.elbv2
            .deregister_targets()
            .target_group_arn(&self.tg_arn)
            .targets(
                aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                    .id(id)
                    .build(),
            )
            .send()
            .await
            .expect("DeregisterTargets");
    }

    /// The group's suspended processes, sorted.
    pub async fn suspended_processes(&self, asg: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .group(asg)
            .await
            .suspended_processes()
            .iter()
            .filter_map(|p| p.process_name().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// Suspends processes by hand, as an operator does mid-incident.
    pub async fn suspend(&self, asg: &str, processes: &[&str]) {
        self.autoscaling
            .suspend_processes()
            .auto_scaling_group_name(asg)
            .set_scaling_processes(Some(processes.iter().map(|p| p.to_string()).collect()))
            .send()
            .await
            .expect("SuspendProcesses");
    }

    /// The ASG's view of an instance's health (`Healthy` / `Unhealthy`).
    pub async fn asg_health(&self, instance_id: &str) -> String {
        self.autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .expect("DescribeAutoScalingInstances")
            .auto_scaling_instances()
            .first()
            .and_then(|i| i.health_status().map(str::to_string))
            .unwrap_or_default()
    }

    /// ASG health of every instance of every ASG, for "nothing changed" checks.
    pub async fn all_asg_health(&self) -> BTreeMap<String, String> {
        let mut all = BTreeMap::new();
        for asg in [MANAGED_ASG, UNMANAGED_ASG] {
            for id in self.instances(asg).await {
                let health = self.asg_health(&id).await;
                all.insert(id, health);
            }
        }
        all
    }

    /// Target health states by instance, as ELB reports them.
    pub async fn target_states(&self) -> BTreeMap<String, String> {
        self.elbv2
            .describe_target_health()
            .target_group_arn(&self.tg_arn)
            .send()
            .await
            .expect("DescribeTargetHealth")
            .target_health_descriptions()
            .iter()
            .filter_map(|d| {
                Some((
                    d.target()?.id()?.to_string(),
                    d.target_health()?.state()?.as_str().to_string(),
                ))
            })
            .collect()
    }

    /// An alarm event from `events/` made to name this stack's target group
    /// and load balancer (the dimensions are the ARN suffixes, as in AWS).
    pub fn alarm_event(&self, sample: &str) -> Value {
        let mut event = crate::sample_event(sample);
        let tg = suffix(&self.tg_arn, "targetgroup/");
        let lb = suffix(&self.lb_arn, "app/");
        if let Some(metrics) = event
            .pointer_mut("/detail/configuration/metrics")
            .and_then(Value::as_array_mut)
        {
            for m in metrics {
                if let Some(d) = m
                    .pointer_mut("/metricStat/metric/dimensions")
                    .and_then(Value::as_object_mut)
                {
                    if d.contains_key("TargetGroup") {
                        d.insert("TargetGroup".into(), Value::String(tg.clone()));
                    }
                    if d.contains_key("LoadBalancer") {
                        d.insert("LoadBalancer".into(), Value::String(lb.clone()));
                    }
                }
            }
        }
        event
    }

    /// Every report delivered to the subscriber queue so far (waits briefly
    /// for the first, then drains).
    pub async fn reports(&self) -> Vec<Delivery> {
        self.drain(&self.queue_url)
            .await
            .into_iter()
            .map(|raw| {
                let report: Report =
                    serde_json::from_str(raw["Message"].as_str().expect("Message"))
                        .expect("the SQS subscriber receives the JSON report (default)");
                let attributes = raw["MessageAttributes"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    v["Value"].as_str().unwrap_or_default().to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Delivery {
                    subject: raw["Subject"].as_str().unwrap_or_default().to_string(),
                    attributes,
                    report,
                    raw,
                }
            })
            .collect()
    }
}

async fn create_subnet(ec2: &aws_sdk_ec2::Client, vpc_id: &str, az: &str, n: usize) -> String {
    ec2.create_subnet()
        .vpc_id(vpc_id)
        .availability_zone(az)
        .cidr_block(format!("10.0.{n}.0/24"))
        .send()
        .await
        .expect("CreateSubnet")
        .subnet
        .and_then(|s| s.subnet_id)
        .expect("subnet id")
}

fn suffix(arn: &str, marker: &str) -> String {
    arn.find(marker)
        .map(|i| arn[i..].to_string())
        .unwrap_or_else(|| arn.to_string())
}
