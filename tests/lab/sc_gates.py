"""Lab shapes where a limit rule decides through a jump to a chain that logs and rejects.

The cause is the rule whose condition (a rate or connection limit) sent the packet
to that chain; the REJECT it leads to only answers. A UFW-shaped rule set rejects
with ICMP port-unreachable (clients see "connection refused", not a reset), which
the finding must say.
"""

from __future__ import annotations

from tests.lab.sc_net import BASE_RULES
from tests.lab.scenarios import Ctx, Expect, scenario
from tests.lab.web import upstream


@scenario("hashlimit-jump", "hashlimit above 5/sec jumps to a chain that logs and resets",
          Expect("firewall-rate-limit", rule={"table": "filter", "chain": "INPUT", "position": 4},
                 mentions=("RATE-LIMIT",), absent=("firewall-reject",)),
          host="edge-11.example.org", kernel_style="rsyslog")
def hashlimit_jump(ctx: Ctx) -> None:
    upstream(ctx.lab, 8080)
    ctx.srv(BASE_RULES + """
iptables -N RATE-LIMIT
iptables -A INPUT -p tcp --syn --dport 8080 -m hashlimit --hashlimit-above 5/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name web -j RATE-LIMIT
iptables -A RATE-LIMIT -m limit --limit 30/min --limit-burst 10 -j LOG --log-prefix "rate-drop: "
iptables -A RATE-LIMIT -p tcp -j REJECT --reject-with tcp-reset""")
    ctx.mark()
    got = ctx.load(40, port=8080, concurrency=8)
    ctx.collect()
    ctx.check(got["refused"] >= 15, f"most quick connections refused: {dict(got)}")
    ctx.check(ctx.rule_packets("-A RATE-LIMIT -p tcp -j REJECT") >= 15, "child REJECT counted")
    ctx.check("rate-drop: " in ctx.text("kern.log"), "rate-drop lines in kern.log")


UFW_RULES = """iptables -N ufw-user-input
iptables -N ufw-user-limit
iptables -N ufw-user-limit-accept
iptables -A INPUT -i lo -j ACCEPT
iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A INPUT -j ufw-user-input
iptables -A ufw-user-input -p tcp --dport 2222 -m conntrack --ctstate NEW -m recent --set --name DEFAULT --mask 255.255.255.255 --rsource
iptables -A ufw-user-input -p tcp --dport 2222 -m conntrack --ctstate NEW -m recent --update --seconds 30 --hitcount 6 --name DEFAULT --mask 255.255.255.255 --rsource -j ufw-user-limit
iptables -A ufw-user-input -p tcp --dport 2222 -j ufw-user-limit-accept
iptables -A ufw-user-limit -m limit --limit 3/min -j LOG --log-prefix "[UFW LIMIT BLOCK] "
iptables -A ufw-user-limit -j REJECT
iptables -A ufw-user-limit-accept -j ACCEPT
"""


@scenario("ufw-limit", "UFW `limit` (recent --update) jumps to ufw-user-limit, which rejects "
          "with ICMP", Expect("firewall-rate-limit",
                              rule={"table": "filter", "chain": "ufw-user-input", "position": 2},
                              mentions=("icmp-port-unreachable",), absent=("firewall-reject",)),
          host="bastion-03.example.net", kernel_style="rsyslog")
def ufw_limit(ctx: Ctx) -> None:
    upstream(ctx.lab, 2222)
    ctx.srv(UFW_RULES)
    ctx.mark()
    got = ctx.load(20, port=2222, concurrency=1)
    ctx.collect()
    ctx.check(got["refused"] >= 10, f"connections past the 6th refused: {dict(got)}")
    ctx.check(ctx.rule_packets("-A ufw-user-limit -j REJECT") >= 10, "ufw-user-limit counted")
    ctx.check("[UFW LIMIT BLOCK] " in ctx.text("kern.log"), "UFW LIMIT BLOCK lines in kern.log")
