import ShifterCore
import Testing

struct NodeMetricsTests {
    @Test func countersSurviveAWriteAndARead() {
        var metrics = NodeMetrics()
        metrics.addProlog(succeeded: true, phases: ["resolve": 0.25, "image": 0.5, "cache": 1.125], total: 2)
        metrics.addProlog(succeeded: false, phases: ["resolve": 0.5], total: 0.5)
        metrics.addEpilog(clean: true)
        metrics.addEpilog(clean: true)
        metrics.addEpilog(clean: false)
        let read = NodeMetrics.parse(metrics.text(node: "n1"))
        #expect(read.prologSuccesses == 1)
        #expect(read.prologFailures == 1)
        #expect(read.epilogsClean == 2)
        #expect(read.epilogsIncomplete == 1)
        #expect(read.prologPhaseSecondsTotal == ["resolve": 0.75, "image": 0.5, "cache": 1.125])
        #expect(read.lastPrologPhaseSeconds == ["resolve": 0.5])
        #expect(read.lastPrologSeconds == 0.5)
    }

    @Test func theTextIsPrometheusExpositionWithANodeLabel() {
        var metrics = NodeMetrics()
        metrics.addProlog(succeeded: true, phases: ["record": 0.000_25, "resolve": 1.5], total: 1.75)
        metrics.roots = 2
        metrics.perNodeCaches = 1
        metrics.perNodeCacheBytes = 536_870_912
        let lines = metrics.text(node: "n\"1").split(separator: "\n").map(String.init)
        #expect(lines.contains("# TYPE shifter_prolog_runs_total counter"))
        #expect(lines.contains("shifter_prolog_runs_total{node=\"n\\\"1\",result=\"success\"} 1"))
        #expect(lines.contains("shifter_job_roots{node=\"n\\\"1\"} 2"))
        #expect(lines.contains("shifter_per_node_cache_bytes{node=\"n\\\"1\"} 536870912"))
        // Phases come in build order, in fixed notation.
        let phases = lines.filter { $0.hasPrefix("shifter_prolog_phase_seconds_total{") }
        #expect(phases == ["shifter_prolog_phase_seconds_total{node=\"n\\\"1\",phase=\"resolve\"} 1.500000",
                           "shifter_prolog_phase_seconds_total{node=\"n\\\"1\",phase=\"record\"} 0.000250"])
        // Every sample line belongs to a family announced by HELP and TYPE.
        var announced = Set<String>()
        for line in lines {
            if line.hasPrefix("# TYPE ") { announced.insert(String(line.split(separator: " ")[2])) }
            if !line.hasPrefix("#") { #expect(announced.contains(String(line.prefix { $0 != "{" })), "\(line)") }
        }
    }

    @Test(arguments: ["", "garbage\n", "shifter_prolog_runs_total{result=\"success\"} -3\n",
                      "shifter_prolog_runs_total{result=\"success\" 7\n", "shifter_prolog_runs_total{result=\"success\"} x\n"])
    func aDamagedFileRestartsItsCountersAtZero(text: String) {
        #expect(NodeMetrics.parse(text).prologSuccesses == 0)
    }

    @Test func gaugesAreNotCarriedOver() {
        var metrics = NodeMetrics()
        metrics.roots = 3
        metrics.perNodeCacheBytes = 10
        let read = NodeMetrics.parse(metrics.text(node: "n1"))
        #expect(read.roots == 0)
        #expect(read.perNodeCacheBytes == 0)
    }
}
