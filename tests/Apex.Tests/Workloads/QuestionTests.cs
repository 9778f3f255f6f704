using System.Globalization;
using System.Net;
using System.Text;
using Apex.Client;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Workloads;

/// <summary>One server (free tier, the built-in model) and one user with the fixed dataset uploaded, shared by the questions.</summary>
public sealed class QuestionServer : IAsyncLifetime
{
    public ApexTestServer Server { get; private set; } = null!;

    public ApexClient Client { get; private set; } = null!;

    internal List<Row> Rows { get; } = Row.Fixed(300);

    public async Task InitializeAsync()
    {
        Server = await ApexTestServer.StartAsync();
        Client = await Server.NewUserAsync();
        using var upload = Client.Authorized(HttpMethod.Post, "api/workloads", new StringContent(Row.Csv(Rows), Encoding.UTF8, "text/csv"));
        Assert.Equal(HttpStatusCode.OK, (await Client.Http.SendAsync(upload)).StatusCode);
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}

/// <summary>
/// Questions a person asks, each answered over the fixed dataset and checked against an independent computation, in the
/// first paragraph of the answer: where the person reads.
/// </summary>
public sealed class QuestionTests(QuestionServer fixture, ProServer pro) : IClassFixture<QuestionServer>, IClassFixture<ProServer>
{
    private List<Row> Rows => fixture.Rows;

    private static string Ms(double value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Money(double value) => value.ToString(value >= 100 ? "N0" : "N2", CultureInfo.InvariantCulture);

    private static string Percent(long part, long whole) => (Math.Round((double)part / whole, 4) * 100).ToString("0.##", CultureInfo.InvariantCulture) + "%";

    private static string Answer(List<ApexEvent> events) => string.Concat(events.OfType<MessageDelta>().Select(d => d.Data.Delta));

    private static string FirstParagraph(List<ApexEvent> events) => Answer(events).Split("\n\n")[0];

    private static List<string> Agents(List<ApexEvent> events) => [.. events.OfType<AgentStarted>().Select(a => a.Data.Agent)];

    private async Task<List<ApexEvent>> AskAsync(string question, string? threadId = null)
    {
        var ct = Waits.Timeout();
        using var socket = await fixture.Client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync(question, threadId, ct);
        Assert.IsType<RunCompleted>(events[^1]);
        return events;
    }

    private (string Model, double P95) SlowestAtP95() =>
        Rows.GroupBy(r => r.Model).Select(g => (g.Key, Row.P(g.Select(r => r.Latency), 95))).MaxBy(m => m.Item2);

    [Fact]
    public async Task TheSlowestModelAtP95IsNamedWithItsFigure()
    {
        var events = await AskAsync("Which model is slowest at p95?");
        var (model, p95) = SlowestAtP95();
        var first = FirstParagraph(events);
        Assert.Contains($"slowest model at p95 is {model}: {Ms(p95)} ms", first, StringComparison.Ordinal);
        Assert.Contains($"against {Ms(Row.P(Rows.Select(r => r.Latency), 95))} ms across all 300 calls", first, StringComparison.Ordinal);
        Assert.Equal(["supervisor", "triage", "data", "reporting"], Agents(events));
        Assert.Equal(["workload_summary", "workload_summary", "latency_profile"], events.OfType<ToolCompleted>().Select(t => t.Data.Tool));
        Assert.DoesNotContain("# Workload optimization report", Answer(events), StringComparison.Ordinal);
    }

    [Fact]
    public async Task OneFeaturesCostIsAnsweredFromThatFeaturesCallsOnly()
    {
        var events = await AskAsync("What did the chat feature cost?");
        var chat = Rows.Where(r => r.Feature == "chat").ToList();
        var first = FirstParagraph(events);
        Assert.StartsWith($"The chat feature cost ${Money(chat.Sum(r => r.EffectiveCost))} over {chat.Count} calls", first, StringComparison.Ordinal);
        var call = events.OfType<ToolExecuting>().Single(t => t.Data.Tool == "cost_breakdown");
        Assert.Equal("chat", call.Data.Arguments.GetProperty("feature").GetString());
    }

    [Fact]
    public async Task OneModelsErrorRateIsAnswered()
    {
        var events = await AskAsync("What is the error rate of gpt-4o-mini?");
        var mini = Rows.Where(r => r.Model == "gpt-4o-mini").ToList();
        var failed = mini.Count(r => r.Status != "ok");
        Assert.True(failed > 0);
        Assert.StartsWith($"gpt-4o-mini has an error rate of {Percent(failed, mini.Count)}: {failed} of {mini.Count} calls", FirstParagraph(events), StringComparison.Ordinal);
        Assert.Equal("gpt-4o-mini", events.OfType<ToolExecuting>().Single(t => t.Data.Tool == "error_analysis").Data.Arguments.GetProperty("model").GetString());
    }

    [Fact]
    public async Task ATimeWindowsTotalCountsOnlyTheCallsInIt()
    {
        var events = await AskAsync("How much did I spend on 2026-11-02?");
        var day = Rows.Where(r => r.Ts.UtcDateTime.Date == new DateTime(2026, 11, 2)).ToList();
        Assert.InRange(day.Count, 1, Rows.Count - 1);
        Assert.StartsWith($"You spent ${Money(day.Sum(r => r.EffectiveCost))} on {day.Count} calls on 2026-11-02", FirstParagraph(events), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFollowUpResolvesItFromThePreviousAnswer()
    {
        var before = await AskAsync("Which model is slowest at p95?");
        var events = await AskAsync("What is its error rate?", before[0].ThreadId);
        var (model, _) = SlowestAtP95();
        var calls = Rows.Where(r => r.Model == model).ToList();
        var failed = calls.Count(r => r.Status != "ok");
        Assert.StartsWith($"{model} has an error rate of {Percent(failed, calls.Count)}: {failed} of {calls.Count} calls", FirstParagraph(events), StringComparison.Ordinal);

        var next = await AskAsync("and the search feature?", before[0].ThreadId);
        var search = Rows.Where(r => r.Feature == "search").ToList();
        Assert.StartsWith($"The search feature has an error rate of {Percent(search.Count(r => r.Status != "ok"), search.Count)}", FirstParagraph(next), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AGreetingGetsAShortAnswerAndNoReport()
    {
        var events = await AskAsync("Hello! What can you do?");
        var answer = Answer(events);
        Assert.InRange(answer.Length, 100, 999);
        Assert.DoesNotContain("#", answer, StringComparison.Ordinal);
        Assert.Contains("300 calls", answer, StringComparison.Ordinal);
        Assert.StartsWith("Hello! I'm Apex.", FirstParagraph(events), StringComparison.Ordinal);
        Assert.Equal(["supervisor", "triage", "reporting"], Agents(events));
        Assert.Equal(["workload_summary"], events.OfType<ToolCompleted>().Select(t => t.Data.Tool));
    }

    [Fact]
    public async Task AModelTheDataLacksIsSaidSo()
    {
        var events = await AskAsync("What is the p95 latency of gemini-1.5-pro?");
        var first = FirstParagraph(events);
        Assert.StartsWith("Your data has no calls for the model gemini-1.5-pro", first, StringComparison.Ordinal);
        foreach (var model in Rows.Select(r => r.Model).Distinct()) Assert.Contains(model, first, StringComparison.Ordinal);
        var triage = events.OfType<AgentCompleted>().Single(a => a.Data.Agent == "triage").Data.Result!.Value;
        Assert.Equal("model gemini-1.5-pro", triage.GetProperty("entities").GetProperty("not_in_data")[0].GetString());
    }

    [Fact]
    public async Task ALatencyQuestionThatAsksWhatToDoLeadsWithLatencyFiguresAndStrategies()
    {
        var events = await AskAsync("Which model is slowest and how do I cut p95 latency?");
        var (model, p95) = SlowestAtP95();
        var first = FirstParagraph(events);
        Assert.Contains($"{model}: {Ms(p95)} ms", first, StringComparison.Ordinal);
        Assert.Contains("To cut p95 latency:", first, StringComparison.Ordinal);
        Assert.Contains("stream responses", first, StringComparison.Ordinal);
        var answer = Answer(events);
        Assert.True(answer.IndexOf("## Latency strategies", StringComparison.Ordinal) < answer.IndexOf("## Top savings", StringComparison.Ordinal));
        Assert.Equal(["supervisor", "triage", "data", "optimization", "actions", "reporting"], Agents(events));
    }

    [Fact]
    public async Task AModelChoiceOnTheFreePlanSaysTheWhatIfNeedsProAndGivesTheFreeFigures()
    {
        var events = await AskAsync("Should I switch from gpt-4o to gpt-4o-mini for my chat feature?");
        var first = FirstParagraph(events);
        Assert.StartsWith("A what-if for moving gpt-4o to gpt-4o-mini for the chat feature needs the pro plan", first, StringComparison.Ordinal);
        var chat4o = Rows.Where(r => r.Feature == "chat" && r.Model == "gpt-4o").ToList();
        Assert.Contains($"gpt-4o cost ${Money(chat4o.Sum(r => r.EffectiveCost))} over {chat4o.Count} calls (p95 {Ms(Row.P(chat4o.Select(r => r.Latency), 95))} ms", first, StringComparison.Ordinal);
        Assert.Contains(events.OfType<ToolCompleted>(), t => t.Data.Tool == "routing_what_if" && t.Data.Status == "denied");
    }

    [Fact]
    public async Task AModelChoiceOnTheProPlanLeadsWithTheWhatIfForTheNamedModels()
    {
        var ct = Waits.Timeout();
        using var client = await pro.Server.NewUserAsync();
        using (var upload = client.Authorized(HttpMethod.Post, "api/workloads", new StringContent(Row.Csv(Rows), Encoding.UTF8, "text/csv")))
            Assert.Equal(HttpStatusCode.OK, (await client.Http.SendAsync(upload, ct)).StatusCode);
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("Should I switch from gpt-4o to gpt-4o-mini for my chat feature?", cancellationToken: ct);

        var moved = Rows.Where(r => r.Feature == "chat" && r.Model == "gpt-4o").ToList();
        var (price, days) = (Row.Prices["gpt-4o-mini"], (Rows[^1].Ts - Rows[0].Ts).TotalDays);
        var current = moved.Sum(r => r.EffectiveCost);
        var projected = (moved.Sum(r => r.Prompt) * price.In + moved.Sum(r => r.Completion) * price.Out) / 1_000_000;
        Assert.StartsWith($"Moving 100% of gpt-4o's calls for the chat feature ({moved.Count} calls) to gpt-4o-mini would have cost ${Money(Math.Round(projected, 2))} " +
                          $"instead of ${Money(Math.Round(current, 2))}, saving about ${Money(Math.Round((current - projected) * 30 / days, 2))}/month", FirstParagraph(events), StringComparison.Ordinal);
    }
}
