using System.Globalization;
using Apex.Client;

namespace Apex.Server.Agents;

/// <summary>
/// The built-in model's direct answers: one or two sentences that answer what triage read in the request, with the figure
/// and its basis (how many calls, of what, over which period), every figure read from a tool result.
/// </summary>
internal static class Answers
{
    public static (string? Answer, TriageEntities? Focus) ForQuestion(TriageResult? triage, WorkloadSummaryResult? summary, CostBreakdownResult? costs,
        LatencyProfileResult? latency, ErrorAnalysisResult? errors, TokenEfficiencyResult? tokens)
    {
        if (summary is null) return ("No figures could be computed: the workload summary was not available.", null);
        var e = triage?.Entities ?? new TriageEntities([], [], []);
        if (e.NotInData is { Count: > 0 } missing) return (Missing(missing, summary), null);
        var scope = Scope(e, triage?.Category);
        if (summary.Calls == 0)
            return ($"Your data has no calls {(scope.Length > 0 ? "for " + scope : "")}{(e.Window is { } w ? " " + w.Label : "")}: nothing to measure there.", e);

        var basis = Basis(summary, e.Window);
        var sentences = new List<string>();
        TriageEntities? focus = Named(e) ? Subject(e) : null;
        var metrics = e.Metrics;
        var latencyAsked = metrics.Any(m => m is "latency" or "p50" or "p95" or "p99");
        var order = new List<string>();
        if (triage?.Category == "model_selection" && e.Models.Count >= 2) order.Add("compare");
        if (triage?.Category == "latency" && latencyAsked) order.Add("latency");
        if (metrics.Contains("cost")) order.Add("cost");
        if (latencyAsked) order.Add("latency");
        if (metrics.Contains("error_rate")) order.Add("errors");
        if (metrics.Contains("tokens")) order.Add("tokens");
        if (metrics.Contains("calls")) order.Add("calls");
        if (order.Count == 0) order.Add("overview");

        foreach (var part in order.Distinct())
        {
            if (sentences.Count == 2) break;
            var sentence = part switch
            {
                "compare" => Compare(e, scope, costs, latency, errors),
                "latency" when latency is not null => Latency(e, scope, basis, latency, ref focus),
                "cost" when costs is not null => Cost(e, scope, basis, summary, costs, ref focus),
                "errors" when errors is not null => Errors(e, scope, basis, errors, ref focus),
                "tokens" when tokens is not null => Tokens(scope, basis, summary, tokens),
                "calls" => $"{Capital(scope.Length > 0 ? scope : "your workload")} made {summary.Calls:N0} calls{Period(summary, e.Window)}, {summary.Errors:N0} of them failed.",
                "overview" => Overview(scope, basis, summary, latency, errors),
                _ => null,
            };
            if (sentence is not null) sentences.Add(sentence);
        }
        return (sentences.Count == 0 ? Overview(scope, basis, summary, latency, errors) : string.Join(" ", sentences), focus);
    }

    public static string? ForAdvice(TriageResult? triage, string tier, IReadOnlyList<SavingStrategy> strategies, double total, RoutingWhatIfResult? whatIf,
        ToolErrorResult? whatIfError, LatencyProfileResult? latency)
    {
        var e = triage?.Entities;
        if (triage?.Category == "model_selection" && e is { Models.Count: >= 1 })
        {
            var scope = e.Features is [var f] ? $" for the {Markdown.Text(f)} feature" : e.Teams is [var t] ? $" for the {Markdown.Text(t)} team" : "";
            if (whatIf is { } r)
            {
                var verdict = r.MonthlySavingsUsd >= 0 ? $"saving about ${Figures.Money(r.MonthlySavingsUsd)}/month" : $"about ${Figures.Money(-r.MonthlySavingsUsd)}/month more";
                var speed = r.ProjectedAvgLatencyMs is { } after ? $"; mean latency would go from {r.FromAvgLatencyMs:N0} ms to {after:N0} ms" : "";
                return $"Moving {r.Share * 100:0}% of {Markdown.Text(r.FromModel)}'s calls{scope} ({r.MovedCalls:N0} calls) to {Markdown.Text(r.ToModel)} would have cost ${Figures.Money(r.ProjectedCostUsd)} " +
                       $"instead of ${Figures.Money(r.CurrentCostUsd)}, {verdict}{speed}. Check answer quality on a sample before you switch.";
            }
            if (whatIfError is not null)
                return $"A what-if for moving {Markdown.Text(e.Models[0])}{(e.Models.Count > 1 ? " to " + Markdown.Text(e.Models[1]) : "")}{scope} needs the pro plan (routing_what_if), and you are on {tier}; " +
                       "the figures the free tools show are below.";
        }
        if (triage?.Category == "latency" && latency is not null)
        {
            var fixes = strategies.Where(s => BuiltInAgents.LatencyKinds.Contains(s.Kind)).Select(s => s.Kind switch
            {
                "latency_routing" => $"route latency-sensitive calls to {Markdown.Text(latency.Models[^1].Model)} (p95 {latency.Models[^1].P95Ms:N0} ms)",
                "caching" => "cache repeated prompts",
                "streaming" => "stream responses",
                _ => $"time out near p95 ({latency.Overall.P95Ms:N0} ms) with a fallback",
            }).ToList();
            if (fixes.Count > 0) return $"To cut p95 latency: {Join(fixes)}.";
        }
        var top = strategies.FirstOrDefault(s => s.ProjectedMonthlySavingsUsd > 0);
        return top is null ? "No strategy with a measurable saving was found in this data."
            : $"The biggest saving found is to {char.ToLowerInvariant(top.Name[0])}{top.Name[1..]}: about ${Figures.Money(top.ProjectedMonthlySavingsUsd)}/month, of ${Figures.Money(total)}/month in total.";
    }

    private static string Missing(IReadOnlyList<string> missing, WorkloadSummaryResult summary)
    {
        var kinds = missing.Select(m => m.Split(' ', 2)).ToList();
        var what = Join([.. kinds.Select(k => $"the {k[0]} {Markdown.Text(k[1])}")]);
        var has = kinds.Select(k => k[0]).Distinct().Select(kind => kind switch
        {
            "model" => $"the models in it are {Join(Markdown.Texts(summary.Models))}",
            "feature" => summary.Features is { Count: > 0 } f ? $"its features are {Join(Markdown.Texts(f))}" : "it names no features",
            "team" => summary.Teams is { Count: > 0 } t ? $"its teams are {Join(Markdown.Texts(t))}" : "it names no teams",
            _ => $"its providers are {Join(Markdown.Texts(summary.Providers ?? []))}",
        });
        return $"Your data has no calls for {what}, so I have no figures for {(missing.Count == 1 ? "it" : "them")}: {string.Join("; ", has)}.";
    }

    private static string? Compare(TriageEntities e, string scope, CostBreakdownResult? costs, LatencyProfileResult? latency, ErrorAnalysisResult? errors)
    {
        var parts = e.Models.Take(2).Select(model =>
        {
            var cost = costs?.Groups.FirstOrDefault(g => g.Key == model);
            var lat = latency?.Models.FirstOrDefault(m => m.Model == model);
            var err = errors?.Models.FirstOrDefault(m => m.Model == model);
            if (cost is null && lat is null) return $"{Markdown.Text(model)} has no calls{(scope.Length > 0 ? " for " + scope : "")}";
            var details = new List<string>();
            if (lat is not null) details.Add($"p95 {lat.P95Ms:N0} ms");
            if (err is not null) details.Add($"error rate {err.ErrorRate * 100:0.##}%");
            return $"{Markdown.Text(model)} cost ${Figures.Money(cost?.CostUsd ?? 0)} over {cost?.Calls ?? lat?.Calls ?? 0:N0} calls ({string.Join(", ", details)})";
        }).ToList();
        return $"{(scope.Length > 0 ? "For " + scope + ", " : "")}{string.Join(" and ", parts)}.";
    }

    private static string Latency(TriageEntities e, string scope, string basis, LatencyProfileResult latency, ref TriageEntities? focus)
    {
        var (name, pick) = e.Metrics.Contains("p99") ? ("p99", (Func<LatencyFigures, double>)(l => l.P99Ms))
            : e.Metrics.Contains("p50") && !e.Metrics.Contains("p95") ? ("p50", l => l.P50Ms) : ("p95", l => l.P95Ms);
        var o = latency.Overall;
        if (e.Models is [var model] && latency.Models is [var only] && only.Model == model)
            return $"{Capital(scope)} has a {name} latency of {pick(o):N0} ms over {basis} (p50 {o.P50Ms:N0} ms, p95 {o.P95Ms:N0} ms, p99 {o.P99Ms:N0} ms; nearest rank).";
        var ranked = latency.Models.OrderByDescending(m => pick(Of(m))).ToList();
        if (ranked.Count == 0) return $"There are no latencies to rank{(scope.Length > 0 ? " for " + scope : "")}.";
        var fastest = e.Constraints.Contains("fastest");
        var chosen = fastest ? ranked[^1] : ranked[0];
        focus = new TriageEntities([chosen.Model], e.Metrics, [], [], e.Features ?? [], e.Teams ?? [], e.Window);
        return $"The {(fastest ? "fastest" : "slowest")} model at {name}{(scope.Length > 0 ? " for " + scope : "")} is {Markdown.Text(chosen.Model)}: {pick(Of(chosen)):N0} ms over its " +
               $"{chosen.Calls:N0} calls, against {pick(o):N0} ms across all {basis} (nearest rank).";
    }

    private static LatencyFigures Of(ModelLatency m) => new(m.Calls, m.P50Ms, m.P95Ms, m.P99Ms, m.MeanMs);

    private static string Cost(TriageEntities e, string scope, string basis, WorkloadSummaryResult summary, CostBreakdownResult costs, ref TriageEntities? focus)
    {
        var top = costs.Groups.FirstOrDefault();
        var split = top is null || costs.Groups.Count < 2 ? "" : $"; {Markdown.Text(top.Key)} is the largest share at ${Figures.Money(top.CostUsd)} ({top.Share * 100:0.#}%)";
        if (scope.Length == 0 && e.Window is null)
        {
            if (top is not null && costs.GroupBy == "model") focus ??= new TriageEntities([top.Key], e.Metrics, []);
            return $"You spent ${Figures.Money(costs.TotalCostUsd)} on {basis}, about ${Figures.Money(costs.MonthlyCostUsd)} a month{split}.";
        }
        var subject = scope.Length > 0 ? Capital(scope) + " cost" : "You spent";
        return $"{subject} ${Figures.Money(costs.TotalCostUsd)} {(scope.Length > 0 ? "over" : "on")} {basis}{(e.Window is null ? $", about ${Figures.Money(costs.MonthlyCostUsd)} a month" : "")}{split}.";
    }

    private static string Errors(TriageEntities e, string scope, string basis, ErrorAnalysisResult errors, ref TriageEntities? focus)
    {
        var status = errors.Statuses.FirstOrDefault();
        var why = status is null ? "" : $"; the most frequent failure is {Markdown.Text(status.Status)} ({status.Calls:N0})";
        if (e.Models.Count == 1)
            return $"{Capital(scope)} has an error rate of {errors.ErrorRate * 100:0.##}%: {errors.Errors:N0} of {basis} failed{why}.";
        var worst = errors.Models.FirstOrDefault(m => m.Errors > 0);
        if (worst is not null && !Named(e)) focus = new TriageEntities([worst.Model], e.Metrics, [], [], [], [], e.Window);
        return $"{(scope.Length > 0 ? Capital(scope) + " has an" : "Your")} error rate {(scope.Length > 0 ? "of" : "is")} {errors.ErrorRate * 100:0.##}%: {errors.Errors:N0} of {basis} failed" +
               (worst is null ? "." : $"; it is highest on {Markdown.Text(worst.Model)} at {worst.ErrorRate * 100:0.##}% ({worst.Errors:N0} of {worst.Calls:N0}).");
    }

    private static string Tokens(string scope, string basis, WorkloadSummaryResult summary, TokenEfficiencyResult tokens)
    {
        var longest = tokens.Models.MaxBy(m => m.AvgPromptTokens);
        return $"{Capital(scope.Length > 0 ? scope : "your calls")} used {summary.PromptTokens:N0} prompt and {summary.CompletionTokens:N0} completion tokens over {basis}" +
               (longest is null ? "." : $"; {Markdown.Text(longest.Model)} sends the longest prompts, {longest.AvgPromptTokens:N0} tokens a call on average.");
    }

    private static string Overview(string scope, string basis, WorkloadSummaryResult summary, LatencyProfileResult? latency, ErrorAnalysisResult? errors)
    {
        var extra = new List<string>();
        if (latency is not null) extra.Add($"p95 latency {latency.Overall.P95Ms:N0} ms");
        if (errors is not null) extra.Add($"error rate {errors.ErrorRate * 100:0.##}%");
        return $"{(scope.Length > 0 ? Capital(scope) + " cost" : "You spent")} ${Figures.Money(summary.TotalCostUsd)} {(scope.Length > 0 ? "over" : "on")} {basis}" +
               $"{(extra.Count > 0 ? " (" + string.Join(", ", extra) + ")" : "")}.";
    }

    /// <summary>What the figures of a triaged request are about, as words (empty for all of the data), with its time window.</summary>
    public static string ScopeOf(TriageResult? triage)
    {
        if (triage?.Entities is not { } e) return "";
        var scope = Scope(e, triage.Category);
        return e.Window is { } w ? (scope.Length > 0 ? scope + " " : "calls ") + w.Label : scope;
    }

    /// <summary>What the figures are about, as words: "gpt-4o", "the chat feature of the support team".</summary>
    private static string Scope(TriageEntities e, string? category)
    {
        var parts = new List<string>();
        if (e.Models is [var m] && category != "model_selection") parts.Add(Markdown.Text(m));
        if (e.Features is [var f]) parts.Add($"the {Markdown.Text(f)} feature");
        if (e.Teams is [var t]) parts.Add($"the {Markdown.Text(t)} team");
        return parts.Count switch
        {
            0 => "",
            1 => parts[0],
            _ => parts[0] + " in " + string.Join(" of ", parts.Skip(1)),
        };
    }

    private static string Basis(WorkloadSummaryResult summary, TimeWindow? window) => $"{summary.Calls:N0} calls{Period(summary, window)}";

    private static string Period(WorkloadSummaryResult summary, TimeWindow? window) =>
        window is not null ? $" {window.Label}{(window.Label.Contains('-', StringComparison.Ordinal) ? "" : $" ({window.From:yyyy-MM-dd} to {window.To.AddDays(-1):yyyy-MM-dd})")}"
        : summary.FirstCall is { } first && summary.LastCall is { } last ? $" from {first.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)} to {last.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)}" : "";

    private static bool Named(TriageEntities e) => e.Models.Count + (e.Features?.Count ?? 0) + (e.Teams?.Count ?? 0) > 0;

    private static TriageEntities Subject(TriageEntities e) => new(e.Models, e.Metrics, [], e.Providers ?? [], e.Features ?? [], e.Teams ?? [], e.Window);

    /// <summary>Starts a sentence; a model's name keeps its own case.</summary>
    private static string Capital(string text) =>
        text.StartsWith("the ", StringComparison.Ordinal) || text.StartsWith("your ", StringComparison.Ordinal) ? char.ToUpperInvariant(text[0]) + text[1..] : text;

    private static string Join(IReadOnlyList<string> items) => items.Count switch
    {
        0 => "none",
        1 => items[0],
        _ => string.Join(", ", items.Take(items.Count - 1)) + " and " + items[^1],
    };
}
