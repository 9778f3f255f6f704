using System.Net.Http.Json;
using System.Diagnostics;
using System.Text;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Apex.Tests.WebApp;

[Collection(WebAppCollection.Name)]
public sealed class WebDataTests(WebAppFixture fixture, ITestOutputHelper output)
{
    private const string Header = "timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms,status,cost";
    private const string Img = "<img src=x onerror=\"window.__xss=1\">";

    [Fact]
    public async Task AnUploadWithABadRowNamesTheLineAndTheChartsDrawEveryModel()
    {
        await using var me = await fixture.NewSessionAsync();
        await me.SignUpAsync();
        await me.Page.GetByRole(AriaRole.Link, new() { Name = "Data" }).ClickAsync();
        await Expect(me.Page.Locator(".summary")).ToContainTextAsync("No workload data yet");

        var csv = new StringBuilder().AppendLine(Header)
            .AppendLine("2026-03-01T10:00:00Z,openai,gpt-4o,1000,200,850,ok,0.012")
            .AppendLine("2026-03-01T11:00:00Z,openai,gpt-4o-mini,abc,200,300,ok,0.001")
            .AppendLine("2026-03-02T10:00:00Z,openai,gpt-4o-mini,1200,250,310,ok,0.002")
            .AppendLine("2026-03-02T12:00:00Z,anthropic,claude-3-5-sonnet,900,300,1200,ok,0.02")
            .AppendLine("2026-03-03T09:00:00Z,anthropic,claude-3-5-sonnet,800,100,1500,error,0.01");
        await UploadAsync(me.Page, "usage.csv", "text/csv", csv.ToString());

        var report = me.Page.Locator(".report");
        await Expect(report).ToContainTextAsync("4 row(s) accepted, 1 rejected");
        await Expect(report.Locator(".row-errors li")).ToHaveTextAsync(["Line 3: prompt_tokens 'abc' is not a non-negative integer."]);
        Assert.Equal(100, await me.Page.Locator("#upload-progress").EvaluateAsync<double>("p => p.value"));

        var charts = me.Page.Locator(".chart");
        await Expect(charts).ToHaveCountAsync(3);
        await Expect(charts.Nth(0).Locator("svg rect.bar")).ToHaveCountAsync(3); // three models
        await Expect(charts.Nth(1).Locator("svg rect.bar")).ToHaveCountAsync(3); // three days
        await Expect(charts.Nth(2).Locator("svg rect.bar")).ToHaveCountAsync(6); // p50 and p95 of three models
        // The most expensive model has the longest bar, and the bars are not all alike.
        var widths = await charts.Nth(0).Locator("svg rect.bar").EvaluateAllAsync<double[]>("rs => rs.map(r => r.width.baseVal.value)");
        Assert.True(widths[0] > widths[2] * 2, $"bar widths {string.Join(", ", widths)}");
        await Expect(charts.Nth(0).Locator("svg text.label").First).ToHaveTextAsync("claude-3-5-sonnet");
        await Expect(me.Page.Locator(".summary")).ToContainTextAsync("$0.04");

        await me.ScreenshotAsync("upload-bad-row-charts");
        Assert.Empty(me.PageErrors);
    }

    [Fact]
    public async Task MarkupInAMessageAndInAnUploadedRowIsShownAsTextAndNeverRuns()
    {
        await using var me = await fixture.NewSessionAsync();
        await me.SignUpAsync();
        await me.SendAsync($"Is this safe? {Img}");
        var turn = me.Page.Locator(".turn").First;
        await Expect(turn).ToHaveAttributeAsync("data-status", "completed");
        await Expect(turn.Locator(".bubble.user")).ToContainTextAsync(Img);
        await Expect(me.Page.Locator(".thread-list a").First).ToContainTextAsync("<img src=x");

        await me.Page.GetByRole(AriaRole.Link, new() { Name = "Data" }).ClickAsync();
        var csv = new StringBuilder().AppendLine(Header)
            .AppendLine($"2026-03-01T10:00:00Z,openai,\"<img src=x onerror=\"\"window.__xss=2\"\">\",1000,200,850,ok,0.012")
            .AppendLine($"\"{Img.Replace("\"", "\"\"", StringComparison.Ordinal)}\",openai,gpt-4o,1000,200,850,ok,0.012");
        await UploadAsync(me.Page, "xss.csv", "text/csv", csv.ToString());
        await Expect(me.Page.Locator(".report .row-errors li")).ToContainTextAsync($"Line 3: timestamp '{Img}' is not a date");
        var table = me.Page.Locator(".chart").First.Locator("table");
        await Expect(table.Locator("tbody th")).ToHaveTextAsync(["<img src=x onerror=\"window.__xss=2\">"]);
        await Expect(me.Page.Locator(".chart").First.Locator("svg text.label")).ToContainTextAsync("<img src=x");

        // The Markdown renderer, fed markup and a script link, keeps only its own tags.
        var counts = await me.Page.EvaluateAsync<int[]>("""
            async () => {
              const { renderMarkdown } = await import('/js/markdown.js');
              const div = document.createElement('div');
              div.innerHTML = renderMarkdown('# Report\n<img src=x onerror="window.__xss=3"> [a](javascript:window.__xss=4) [b](https://example.com) **bold**');
              document.body.append(div);
              return [div.querySelectorAll('img').length, div.querySelectorAll('a').length, div.querySelectorAll('strong').length, div.querySelectorAll('h3').length];
            }
            """);
        Assert.Equal([0, 1, 1, 1], counts);

        // Nothing executed: no image element exists anywhere and the handlers' flag is unset.
        await me.Page.GetByRole(AriaRole.Link, new() { Name = "Chat" }).ClickAsync();
        await me.Page.Locator(".thread-list a").First.ClickAsync();
        await Expect(me.Page.Locator(".turn .bubble.user")).ToContainTextAsync(Img);
        Assert.Equal(0, await me.Page.Locator("img").CountAsync());
        Assert.Equal("undefined", await me.Page.EvaluateAsync<string>("() => typeof window.__xss"));

        await me.ScreenshotAsync("markup-as-text");
        Assert.Empty(me.PageErrors);
    }

    [Fact]
    public async Task TheUsagePageShowsTheTokensAndCostOfThePersonsRuns()
    {
        await using var me = await fixture.NewSessionAsync();
        await me.SignUpAsync();
        await me.SendAsync("Hello! What can you do?");
        await Expect(me.Page.Locator(".turn").First).ToHaveAttributeAsync("data-status", "completed", new() { Timeout = 30_000 });

        using var api = await me.ApiClientAsync();
        using var request = api.Authorized(HttpMethod.Get, "api/usage?days=30");
        var usage = (await (await api.Http.SendAsync(request)).Content.ReadFromJsonAsync(Apex.Client.ApexJsonContext.Default.UsageDto))!;
        Assert.True(usage.InputTokens > 0);

        await me.Page.GetByRole(AriaRole.Link, new() { Name = "Usage" }).ClickAsync();
        await Expect(me.Page.Locator(".token-total")).ToHaveTextAsync($"{usage.InputTokens + usage.OutputTokens:N0} tokens");
        await Expect(me.Page.Locator(".usage-page table").First).ToContainTextAsync("apex-builtin-1");
        await me.ScreenshotAsync("usage");
        Assert.Empty(me.PageErrors);
    }

    [Fact]
    public async Task TheSignInFormIsUsableFromTheKeyboardAndTheFirstLoadIsUnderOneMegabyte()
    {
        await using var me = await fixture.NewSessionAsync();
        me.Listen();
        // Sizes are read after the load: blocking in a Playwright event handler would stall its dispatcher.
        var finished = new System.Collections.Concurrent.ConcurrentQueue<IRequest>();
        me.Page.RequestFinished += (_, request) => finished.Enqueue(request);
        var clock = Stopwatch.StartNew();
        await me.Page.GotoAsync("/");
        await Expect(me.Page.GetByLabel("Email")).ToBeEditableAsync();
        await Expect(me.Page.GetByRole(AriaRole.Button, new() { Name = "Sign in" })).ToBeEnabledAsync();
        clock.Stop();
        var inPage = await me.Page.EvaluateAsync<double>("() => performance.now()");
        await me.Page.WaitForLoadStateAsync(LoadState.NetworkIdle);
        long bytes = 0;
        foreach (var request in finished)
        {
            var sizes = await request.SizesAsync();
            bytes += sizes.ResponseBodySize + sizes.ResponseHeadersSize;
        }
        var requests = finished.Count;
        output.WriteLine($"first load: {requests} requests, {bytes} bytes; sign-in form usable after {clock.Elapsed.TotalMilliseconds:0} ms (page clock {inPage:0} ms)");
        Assert.True(bytes is > 10_000 and < 1_000_000, $"{bytes} bytes");
        // The time is reported, not asserted: a timing target is a benchmark's figure (README), and this machine is shared.

        // Keyboard only: Tab reaches the fields and buttons in order, with a visible focus ring.
        Assert.Equal("email", await me.Page.EvaluateAsync<string>("() => document.activeElement.id"));
        await me.Page.Keyboard.PressAsync("Tab");
        var focused = await me.Page.EvaluateAsync<string>("() => document.activeElement.id || document.activeElement.textContent");
        Assert.Equal("password", focused);
        var outline = await me.Page.EvaluateAsync<string>("() => getComputedStyle(document.activeElement).outlineStyle");
        Assert.Equal("solid", outline);
        Assert.Empty(me.PageErrors);
    }

    [Fact]
    public async Task AtPhoneWidthTheChatAndTimelineStackAndNothingOverflowsSideways()
    {
        await using var me = await fixture.NewSessionAsync(width: 390, height: 844);
        await me.SignUpAsync();
        await me.SendAsync("Where does my money go?");
        await Expect(me.Page.Locator(".turn").First).ToHaveAttributeAsync("data-status", "completed");
        var overflow = await me.Page.EvaluateAsync<int>("() => document.documentElement.scrollWidth - document.documentElement.clientWidth");
        Assert.True(overflow <= 0, $"{overflow}px of sideways scrolling at phone width");
        var conversation = await me.Page.Locator(".conversation").BoundingBoxAsync();
        var timeline = await me.Page.Locator(".timeline").BoundingBoxAsync();
        Assert.True(timeline!.Y >= conversation!.Y + conversation.Height - 1, "the timeline should follow the conversation at phone width");
        await me.ScreenshotAsync("phone-width");
        Assert.Empty(me.PageErrors);
    }

    private static async Task UploadAsync(IPage page, string name, string mimeType, string content)
    {
        await page.GetByLabel("CSV or JSONL file").SetInputFilesAsync(new FilePayload { Name = name, MimeType = mimeType, Buffer = Encoding.UTF8.GetBytes(content) });
        await page.GetByRole(AriaRole.Button, new() { Name = "Upload", Exact = true }).ClickAsync();
    }
}
