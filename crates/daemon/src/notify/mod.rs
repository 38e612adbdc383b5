//! Alert channels. (Being built: webhook, Alertmanager, Slack, DingTalk, WeCom, Feishu, e-mail.)
