using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Apex.Client;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Workloads;

public sealed class ProServer : IAsyncLifetime
{
    public ApexTestServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await ApexTestServer.StartAsync(new() { ["Apex:Auth:DefaultTier"] = "pro", ["Apex:Workloads:MaxUploadBytes"] = "200000" });

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

public sealed class WorkloadTests(ProServer pro, SharedServer free) : IClassFixture<ProServer>, IClassFixture<SharedServer>
{
    private static async Task<HttpResponseMessage> UploadAsync(ApexClient client, string body, string contentType = "text/csv", string query = "")
    {
        using var request = client.Authorized(HttpMethod.Post, "api/workloads" + query, new StringContent(body, Encoding.UTF8, contentType));
        return await client.Http.SendAsync(request);
    }

    private static async Task<WorkloadSummaryDto> SummaryAsync(ApexClient client) =>
        (await client.Http.SendAsync(client.Authorized(HttpMethod.Get, "api/workloads")).Result.Content.ReadFromJsonAsync(ApexJsonContext.Default.WorkloadSummaryDto))!;

    private static JsonElement ToolResult(List<ApexEvent> events, string tool) =>
        events.OfType<ToolCompleted>().First(t => t.Data.Tool == tool && t.Data.Status == "ok").Data.Result!.Value;

    private static string Money(double value) => value.ToString(value >= 100 ? "N0" : "N2", CultureInfo.InvariantCulture);

    [Fact]
    public async Task EveryFigureInTheToolsAndTheReportMatchesAnIndependentComputation()
    {
        var ct = Waits.Timeout();
        var rows = Row.Fixed(300);
        using var client = await pro.Server.NewUserAsync();
        var upload = await UploadAsync(client, Row.Csv(rows));
        var report = await upload.Content.ReadFromJsonAsync(ApexJsonContext.Default.WorkloadReport, ct);
        Assert.Equal(HttpStatusCode.OK, upload.StatusCode);
        Assert.Equal(300, report!.RowsAccepted);
        Assert.Equal(0, report.RowsRejected);
        Assert.Equal(rows.Count(r => r.Cost is null), report.RowsPricedFromTable);

        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("How do I cut my LLM costs?", cancellationToken: ct);
        Assert.Equal(["supervisor", "triage", "data", "optimization", "actions", "reporting"], events.OfType<AgentStarted>().Select(a => a.Data.Agent));

        var total = rows.Sum(r => r.EffectiveCost);
        var days = (rows[^1].Ts - rows[0].Ts).TotalDays;
        var summary = ToolResult(events, "workload_summary");
        Assert.Equal(300, summary.GetProperty("calls").GetInt64());
        Assert.Equal(rows.Count(r => r.Status != "ok"), summary.GetProperty("errors").GetInt64());
        Assert.Equal(rows.Sum(r => r.Prompt), summary.GetProperty("prompt_tokens").GetInt64());
        Assert.Equal(Math.Round(total, 2), summary.GetProperty("total_cost_usd").GetDouble(), 2);
        Assert.Equal(Math.Round(total * 30 / days, 2), summary.GetProperty("monthly_cost_usd").GetDouble(), 2);

        var byModel = rows.GroupBy(r => r.Model).ToDictionary(g => g.Key, g => g.ToList());
        foreach (var group in ToolResult(events, "cost_breakdown").GetProperty("groups").EnumerateArray())
            Assert.Equal(Math.Round(byModel[group.GetProperty("key").GetString()!].Sum(r => r.EffectiveCost), 2), group.GetProperty("cost_usd").GetDouble(), 2);

        foreach (var model in ToolResult(events, "latency_profile").GetProperty("models").EnumerateArray())
        {
            var latencies = byModel[model.GetProperty("model").GetString()!].Select(r => r.Latency).ToList();
            Assert.Equal(Row.P(latencies, 50), model.GetProperty("p50_ms").GetDouble(), 1);
            Assert.Equal(Row.P(latencies, 95), model.GetProperty("p95_ms").GetDouble(), 1);
            Assert.Equal(Row.P(latencies, 99), model.GetProperty("p99_ms").GetDouble(), 1);
        }

        var errors = ToolResult(events, "error_analysis");
        Assert.Equal(Math.Round(rows.Count(r => r.Status != "ok") / 300.0, 4), errors.GetProperty("error_rate").GetDouble(), 4);

        var repeatGroups = rows.Where(r => r.Status == "ok").GroupBy(r => (r.Hash, r.Model)).Where(g => g.Count() > 1).ToList();
        var repeatCost = repeatGroups.Sum(g => g.Sum(r => r.EffectiveCost) - g.Min(r => r.EffectiveCost));
        var repeats = ToolResult(events, "repeated_prompts");
        Assert.Equal(repeatGroups.Sum(g => g.Count() - 1), repeats.GetProperty("repeat_calls").GetInt64());
        Assert.Equal(Math.Round(repeatCost, 2), repeats.GetProperty("repeat_cost_usd").GetDouble(), 2);
        Assert.Equal(Math.Round(repeatCost * 30 / days, 2), repeats.GetProperty("monthly_cache_savings_usd").GetDouble(), 2);

        // Routing: the most expensive model to the cheapest per call, half its traffic, priced from the table.
        var from = byModel.MaxBy(m => m.Value.Sum(r => r.EffectiveCost)).Key;
        var to = byModel.Where(m => m.Key != from).MinBy(m => m.Value.Sum(r => r.EffectiveCost) / m.Value.Count).Key;
        var current = byModel[from].Sum(r => r.EffectiveCost) * 0.5;
        var projected = (byModel[from].Sum(r => r.Prompt) * 0.5 * Row.Prices[to].In + byModel[from].Sum(r => r.Completion) * 0.5 * Row.Prices[to].Out) / 1_000_000;
        var routing = ToolResult(events, "routing_what_if");
        Assert.Equal(from, routing.GetProperty("from_model").GetString());
        Assert.Equal(to, routing.GetProperty("to_model").GetString());
        var routingMonthly = Math.Round((current - projected) * 30 / days, 2);
        Assert.Equal(routingMonthly, routing.GetProperty("monthly_savings_usd").GetDouble(), 2);

        var answer = string.Concat(events.OfType<MessageDelta>().Select(d => d.Data.Delta));
        Assert.Contains($"You spent ${Money(total)} on 300 LLM calls", answer, StringComparison.Ordinal);
        Assert.Contains($"about **${Money(routingMonthly)}/month**", answer, StringComparison.Ordinal);
        Assert.Contains($"about **${Money(Math.Round(repeatCost * 30 / days, 2))}/month**", answer, StringComparison.Ordinal);
        Assert.Contains("## Action plan", answer, StringComparison.Ordinal);

        var stored = (await client.GetRunAsync(events[0].RunId!, ct)).Results!.Value;
        Assert.Equal(["triage", "data", "optimization", "actions"], stored.EnumerateObject().Select(p => p.Name));
        var optimization = events.OfType<AgentCompleted>().Single(a => a.Data.Agent == "optimization").Data.Result!.Value;
        Assert.True(System.Text.Json.JsonElement.DeepEquals(optimization, stored.GetProperty("optimization")));
        var strategies = optimization.GetProperty("strategies").EnumerateArray().ToList();
        Assert.Equal(Math.Round(strategies.Sum(s => s.GetProperty("projected_monthly_savings_usd").GetDouble()), 2),
            optimization.GetProperty("total_projected_monthly_savings_usd").GetDouble(), 2);
    }

    [Fact]
    public async Task APartialDatasetRunsDataHelperThenDataAndReportsWithGuidance()
    {
        var ct = Waits.Timeout();
        using var client = await pro.Server.NewUserAsync();
        Assert.Equal(HttpStatusCode.OK, (await UploadAsync(client, Row.Csv(Row.Fixed(50)))).StatusCode);
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("Analyse my workload", cancellationToken: ct);
        Assert.Equal("partial", events.OfType<AgentCompleted>().Single(a => a.Data.Agent == "triage").Data.Result!.Value.GetProperty("data_sufficiency").GetString());
        Assert.Equal(["supervisor", "triage", "data_helper", "data", "reporting"], events.OfType<AgentStarted>().Select(a => a.Data.Agent));
        var answer = string.Concat(events.OfType<MessageDelta>().Select(d => d.Data.Delta));
        Assert.Contains("# Workload report (partial)", answer, StringComparison.Ordinal);
        Assert.Contains("50 calls", answer, StringComparison.Ordinal);
        Assert.Contains("## Data needed", answer, StringComparison.Ordinal);
    }

    [Fact]
    public async Task JsonLinesUploadsAndTheSampleGeneratorWork()
    {
        using var client = await pro.Server.NewUserAsync();
        var jsonl = string.Join("\n", Row.Fixed(5).Select(r => JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["timestamp"] = r.Ts, ["provider"] = r.Provider, ["model"] = r.Model, ["prompt_tokens"] = r.Prompt, ["completion_tokens"] = r.Completion,
            ["latency_ms"] = r.Latency, ["error"] = r.Status == "ok" ? null : r.Status,
        })));
        var response = await UploadAsync(client, jsonl, "application/jsonl");
        var report = await response.Content.ReadFromJsonAsync(ApexJsonContext.Default.WorkloadReport);
        Assert.Equal(("jsonl", 5, 0), (report!.Format, report.RowsAccepted, report.RowsRejected));
        Assert.Equal(1, (await SummaryAsync(client)).Errors);

        using var sample = client.Authorized(HttpMethod.Post, "api/workloads/sample", JsonContent.Create(new SampleWorkloadRequest(3, 100, 7), ApexJsonContext.Default.SampleWorkloadRequest));
        var sampled = await (await client.Http.SendAsync(sample)).Content.ReadFromJsonAsync(ApexJsonContext.Default.WorkloadReport);
        Assert.Equal(300, sampled!.RowsAccepted);
        var summary = await SummaryAsync(client);
        Assert.Equal(300, summary.Calls); // the sample replaces earlier data
        Assert.True(summary.Models.Count >= 4);
        Assert.True(summary.Errors > 0);
    }

    public static TheoryData<string, string, HttpStatusCode, string> BadFiles => new()
    {
        { "missing column", "timestamp,provider,model,prompt_tokens\n2026-11-01T00:00:00Z,openai,gpt-4o,10\n", HttpStatusCode.BadRequest, "Missing required column(s): completion_tokens, latency_ms, status (or error)" },
        { "empty", "", HttpStatusCode.BadRequest, "The file is empty" },
        { "every row bad", "timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms,status\nyesterday,openai,gpt-4o,ten,5,100,ok\n", HttpStatusCode.UnprocessableEntity, "Every row of the file was rejected" },
        { "not json", "{oops\n{also bad\n", HttpStatusCode.BadRequest, "No line of the file is valid JSON" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public async Task ABadFileIsRejectedClearlyAndNothingIsImported(string name, string body, HttpStatusCode status, string detail)
    {
        using var client = await pro.Server.NewUserAsync();
        var response = await UploadAsync(client, body, name == "not json" ? "application/jsonl" : "text/csv");
        Assert.Equal(status, response.StatusCode);
        Assert.Contains(detail, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(0, (await SummaryAsync(client)).Calls);
    }

    [Fact]
    public async Task BadEncodingAndTooLargeFilesAreRejected()
    {
        using var client = await pro.Server.NewUserAsync();
        // Read as a stream, a file's first problem is the one reported: here a bad byte in its first row.
        byte[] badRow = [.. "timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms,status\n2026-11-01T00:00:00Z,op"u8.ToArray(), 0xFF, 0xFE, 0x41];
        using (var bytes = client.Authorized(HttpMethod.Post, "api/workloads", new ByteArrayContent(badRow)))
        {
            var response = await client.Http.SendAsync(bytes);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains("not valid UTF-8 (bad byte at offset 98)", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        var large = await UploadAsync(client, Row.Csv(Row.Fixed(3000)));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, large.StatusCode);
        Assert.Equal(0, (await SummaryAsync(client)).Calls);
    }

    [Fact]
    public async Task BadRowsAreReportedWithLineNumbersAndStrictModeImportsNothing()
    {
        using var client = await pro.Server.NewUserAsync();
        var csv = Row.Csv(Row.Fixed(4)).TrimEnd('\n').Split('\n').ToList();
        csv.Insert(2, "2026-11-01T00:00:00Z,openai,gpt-4o,-5,10,100,ok,,,");
        csv.Insert(4, "not a date,openai,gpt-4o,5,10,slow,ok,,,");
        var body = string.Join("\n", csv) + "\n";

        var strict = await UploadAsync(client, body, query: "?strict=true");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, strict.StatusCode);
        Assert.Equal(0, (await SummaryAsync(client)).Calls);

        var lenient = await (await UploadAsync(client, body)).Content.ReadFromJsonAsync(ApexJsonContext.Default.WorkloadReport);
        Assert.Equal((4, 2), (lenient!.RowsAccepted, lenient.RowsRejected));
        Assert.Equal([3, 5], lenient.Errors.Select(e => e.Line));
        Assert.Contains("prompt_tokens '-5'", lenient.Errors[0].Reason, StringComparison.Ordinal);
        Assert.Contains("timestamp 'not a date'", lenient.Errors[1].Reason, StringComparison.Ordinal);
        Assert.Contains("latency_ms 'slow'", lenient.Errors[1].Reason, StringComparison.Ordinal);
        Assert.Equal(4, (await SummaryAsync(client)).Calls);
    }

    [Fact]
    public async Task NamesFromAnUploadComeOutOfTheAnswerAsInertMarkdownText()
    {
        var ct = Waits.Timeout();
        using var client = await pro.Server.NewUserAsync();
        const string link = "**x**](javascript:alert(1))";
        const string image = "<img src=x onerror=alert(1)>";
        // Calls to the link-named model fail now and then; the image-named model costs the most.
        var csv = new StringBuilder("timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms,status,cost\n");
        for (var i = 0; i < 300; i++)
            csv.Append(CultureInfo.InvariantCulture, $"2026-11-{1 + i % 10:00}T{i % 24:00}:00:00Z,openai,{(i % 2 == 0 ? link : image)},100,20,300,{(i % 4 == 0 ? "timeout" : "ok")},{(i % 2 == 0 ? 0.01 : 0.5)}\n");
        Assert.Equal(HttpStatusCode.OK, (await UploadAsync(client, csv.ToString())).StatusCode);

        using var socket = await client.ConnectAsync(ct);
        var answer = string.Concat((await socket.RunToEndAsync("What is my error rate?", cancellationToken: ct)).OfType<MessageDelta>().Select(d => d.Data.Delta))
            + string.Concat((await socket.RunToEndAsync("How much did I spend?", cancellationToken: ct)).OfType<MessageDelta>().Select(d => d.Data.Delta));
        Assert.True(answer.Contains(@"highest on \*\*x\*\*\]\(javascript:alert\(1\)\)", StringComparison.Ordinal), answer);
        Assert.True(answer.Contains(@"\<img src=x onerror=alert\(1\)\> is the largest share", StringComparison.Ordinal), answer);
        // Every tag opener and link bracket that came from the data is escaped: none is left bare.
        Assert.DoesNotMatch(@"(?<!\\)<img", answer);
        Assert.DoesNotMatch(@"(?<!\\)\]\(", answer);
        Assert.DoesNotMatch(@"(?<!\\)\*\*x", answer);
        Assert.DoesNotContain("**x**", answer, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OneUsersDataNeverAppearsInAnotherUsersToolsOrReports()
    {
        var ct = Waits.Timeout();
        using var owner = await pro.Server.NewUserAsync();
        await UploadAsync(owner, Row.Csv(Row.Fixed(300)));
        using var other = await pro.Server.NewUserAsync();
        Assert.Equal(0, (await SummaryAsync(other)).Calls);
        using var socket = await other.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("What do I spend on gpt-4o?", cancellationToken: ct);
        Assert.Equal(0, ToolResult(events, "workload_summary").GetProperty("calls").GetInt64());
        var answer = string.Concat(events.OfType<MessageDelta>().Select(d => d.Data.Delta));
        Assert.Contains("no LLM usage data has been uploaded", answer, StringComparison.Ordinal);
        Assert.DoesNotContain("claude", answer, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFreeUserIsDeniedTheProToolsAndTheTeamWorksAroundIt()
    {
        var ct = Waits.Timeout();
        using var client = await free.Server.NewUserAsync();
        Assert.Equal(HttpStatusCode.OK, (await UploadAsync(client, Row.Csv(Row.Fixed(300)))).StatusCode);
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("Cut my costs", cancellationToken: ct);
        var denied = events.OfType<ToolCompleted>().Where(t => t.Data.Status == "denied").Select(t => t.Data.Tool).ToList();
        Assert.Contains("anomalies", denied);
        Assert.IsType<RunCompleted>(events[^1]);
        var answer = string.Concat(events.OfType<MessageDelta>().Select(d => d.Data.Delta));
        Assert.Contains("Cache responses to repeated prompts", answer, StringComparison.Ordinal);
        Assert.DoesNotContain("Route 50%", answer, StringComparison.Ordinal);

        using var usage = client.Authorized(HttpMethod.Get, "api/usage/tools?limit=200");
        var log = await (await client.Http.SendAsync(usage, ct)).Content.ReadFromJsonAsync(ApexJsonContext.Default.PageToolUsageDto, ct);
        Assert.Equal(events.OfType<ToolCompleted>().Count(), log!.Items.Count);
        Assert.Contains(log.Items, u => u.Tool == "anomalies" && u.Status == "denied");
    }
}
