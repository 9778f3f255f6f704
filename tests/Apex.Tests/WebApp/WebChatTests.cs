using System.Text.Json;
using Apex.Client;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Apex.Tests.WebApp;

[Collection(WebAppCollection.Name)]
public sealed class WebChatTests(WebAppFixture fixture)
{
    private static readonly string[] CriticalTypes = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"];

    [Fact]
    public async Task GoldenPathSignUpGenerateASampleAskAndWatchTheTeamWriteAReportWithDollarFigures()
    {
        await using var me = await fixture.NewSessionAsync();
        await me.SignUpAsync();
        await me.Page.GetByRole(AriaRole.Link, new() { Name = "Data" }).ClickAsync();
        await me.Page.GetByRole(AriaRole.Button, new() { Name = "Generate sample data" }).ClickAsync();
        await Expect(me.Page.Locator(".report")).ToContainTextAsync("4,200 row(s) accepted");

        await me.Page.GetByRole(AriaRole.Link, new() { Name = "Chat" }).ClickAsync();
        await me.SendAsync("How can I cut the cost of my LLM calls?");
        var threadId = await me.ThreadIdAsync();
        var turn = me.Page.Locator(".turn").First;
        await Expect(turn).ToHaveAttributeAsync("data-status", "completed", new() { Timeout = 30_000 });

        await Expect(turn.Locator(".bubble.user")).ToContainTextAsync("How can I cut the cost of my LLM calls?");
        var answer = turn.Locator(".markdown");
        await Expect(answer.Locator("h3").First).ToHaveTextAsync("Workload optimization report");
        await Expect(answer).ToContainTextAsync("/month");
        Assert.Matches(@"\$\d[\d,]*(\.\d\d)?", await answer.InnerTextAsync());

        var timeline = me.Page.Locator(".timeline");
        var agents = await timeline.Locator("li[data-type=agent_started] strong").AllInnerTextsAsync();
        Assert.Equal(["supervisor", "triage", "data", "optimization", "actions", "reporting"], agents);
        foreach (var type in CriticalTypes) Assert.True(await timeline.Locator($"li[data-type={type}]").CountAsync() > 0, $"no {type} in the timeline");
        Assert.True(await timeline.Locator("li[data-type=tool_completed] .badge-ok").CountAsync() >= 3);
        await Expect(timeline.Locator("li[data-type=agent_completed]").Filter(new() { HasText = "reporting" })).ToContainTextAsync("ok");

        // A tool call's arguments and result open and close.
        var tool = timeline.Locator("li[data-type=tool_completed]").First;
        var result = tool.Locator("details");
        await Expect(result.Locator("pre")).Not.ToBeVisibleAsync();
        await result.Locator("summary").ClickAsync();
        await Expect(result.Locator("pre")).ToBeVisibleAsync();
        await Expect(me.Page.Locator(".thread-list a[aria-current=page]")).ToHaveAttributeAsync("data-thread-id", threadId);

        await me.ScreenshotAsync("golden-path");
        await me.Page.ScreenshotAsync(new() { Path = Path.Combine(WebAppFixture.ScreenshotDirectory, "golden-path-viewport.png") });
        Assert.Empty(me.PageErrors);
    }

    [Fact]
    public async Task AReloadInTheMiddleOfASlowRunShowsTheAnswerOnceWithEveryStep()
    {
        await using var me = await fixture.NewSessionAsync(fixture.SlowServer);
        await me.SignUpAsync();
        await me.SendAsync("Why is my latency so high?");
        var threadId = await me.ThreadIdAsync();

        // Reload once the answer has begun to stream and the run is still going: at its first piece, which is sent at once
        // (later pieces are joined over a window that grows with the answer, so waiting for more text could reach the end).
        await me.Page.WaitForFunctionAsync("() => { const t = document.querySelector('.turn'); return t && t.dataset.status === 'running' && t.querySelector('.markdown').textContent.length > 0; }");
        var reloadedAt = DateTimeOffset.UtcNow;
        await me.Page.ReloadAsync();
        var turn = me.Page.Locator(".turn");
        await Expect(turn).ToHaveCountAsync(1);
        await Expect(turn.First).ToHaveAttributeAsync("data-status", "completed", new() { Timeout = 40_000 });

        using var api = await me.ApiClientAsync();
        var messages = await api.ListMessagesAsync(threadId);
        var stored = Assert.Single(messages.Items, m => m.Role == "assistant");
        var run = await api.GetRunAsync(stored.RunId!);
        Assert.True(run.EndedAt > reloadedAt, $"the run ended at {run.EndedAt:O}, before the reload at {reloadedAt:O}: nothing was interrupted");

        // The rendered answer is exactly the stored answer rendered: nothing repeated, nothing missing.
        var expected = await me.Page.EvaluateAsync<string>("async text => { const d = document.createElement('div'); d.innerHTML = (await import('/js/markdown.js')).renderMarkdown(text); return d.innerHTML; }", stored.Content);
        Assert.Equal(expected, await turn.First.Locator(".markdown").InnerHTMLAsync());

        // One timeline entry per stored event that is not a piece of the answer, in seq order.
        var events = new List<ApexEvent>();
        await foreach (var evt in api.StreamEventsAsync(threadId, afterSeq: 0))
        {
            events.Add(evt);
            if (evt.IsTerminal) break;
        }
        var expectedSeqs = events.Where(e => e is not MessageDelta).Select(e => e.Seq.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        var renderedSeqs = await me.Page.Locator(".timeline li[data-seq]").EvaluateAllAsync<string[]>("els => els.map(e => e.dataset.seq)");
        Assert.Equal(expectedSeqs, renderedSeqs);
        // Pieces 30 ms apart are joined over the 100 ms delta window, so the answer came in several pieces, not one per line.
        Assert.True(events.OfType<MessageDelta>().Count() > 1);

        await me.ScreenshotAsync("reload-mid-run");
        Assert.Empty(me.PageErrors);
    }

    [Fact]
    public async Task ADroppedConnectionInTheMiddleOfARunResumesWithNoRepeatedAndNoMissingStep()
    {
        await using var me = await fixture.NewSessionAsync(fixture.SlowServer);
        var sockets = new System.Collections.Concurrent.ConcurrentQueue<IWebSocketRoute>();
        await me.Page.RouteWebSocketAsync("**/ws?*", socket =>
        {
            sockets.Enqueue(socket);
            socket.ConnectToServer();
        });
        await me.SignUpAsync();
        await me.SendAsync("Why is my latency so high?");
        var threadId = await me.ThreadIdAsync();
        await me.Page.WaitForFunctionAsync("() => { const t = document.querySelector('.turn'); return t && t.dataset.status === 'running' && t.querySelector('.markdown').textContent.length > 20; }");

        // The network drops the socket: the page reconnects by itself and resumes from its last seq.
        var droppedAt = DateTimeOffset.UtcNow;
        Assert.Single(sockets);
        await sockets.Last().CloseAsync(new() { Code = 4000, Reason = "network dropped" });
        await Expect(me.Page.Locator(".turn").First).ToHaveAttributeAsync("data-status", "completed", new() { Timeout = 40_000 });
        Assert.True(sockets.Count >= 2, "the page did not reconnect");

        using var api = await me.ApiClientAsync();
        var stored = Assert.Single((await api.ListMessagesAsync(threadId)).Items, m => m.Role == "assistant");
        Assert.True((await api.GetRunAsync(stored.RunId!)).EndedAt > droppedAt, "the run ended before the drop: nothing was resumed");
        var expected = await me.Page.EvaluateAsync<string>("async text => { const d = document.createElement('div'); d.innerHTML = (await import('/js/markdown.js')).renderMarkdown(text); return d.innerHTML; }", stored.Content);
        Assert.Equal(expected, await me.Page.Locator(".turn .markdown").InnerHTMLAsync());
        var events = new List<ApexEvent>();
        await foreach (var evt in api.StreamEventsAsync(threadId, afterSeq: 0))
        {
            events.Add(evt);
            if (evt.IsTerminal) break;
        }
        var expectedSeqs = events.Where(e => e is not MessageDelta).Select(e => e.Seq.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(expectedSeqs, await me.Page.Locator(".timeline li[data-seq]").EvaluateAllAsync<string[]>("els => els.map(e => e.dataset.seq)"));
        await me.ScreenshotAsync("dropped-connection");
        Assert.Empty(me.PageErrors);
    }

    [Fact]
    public async Task ASecondTabOnTheSameThreadFollowsARunStartedInTheFirst()
    {
        await using var me = await fixture.NewSessionAsync(fixture.SlowServer);
        await me.SignUpAsync();
        await me.SendAsync("first question");
        var threadId = await me.ThreadIdAsync();
        await Expect(me.Page.Locator(".turn").First).ToHaveAttributeAsync("data-status", "completed", new() { Timeout = 40_000 });

        var second = await me.Context.NewPageAsync();
        await second.GotoAsync($"/#/t/{threadId}");
        await Expect(second.Locator(".turn")).ToHaveCountAsync(1);
        // Every status the second tab shows for the new turn, as the page changes: polling the attribute can miss a run
        // that starts and ends between two polls, a record of the page's own changes cannot.
        await second.EvaluateAsync("""
            () => {
                window.secondTurnStatuses = [];
                new MutationObserver(() => {
                    const turn = document.querySelectorAll('.turn')[1];
                    if (turn && window.secondTurnStatuses.at(-1) !== turn.dataset.status) window.secondTurnStatuses.push(turn.dataset.status);
                }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'] });
            }
            """);
        await me.SendAsync("second question, from the first tab");
        var followed = second.Locator(".turn").Nth(1);
        await Expect(followed.Locator(".bubble.user")).ToContainTextAsync("second question, from the first tab");
        await Expect(followed).ToHaveAttributeAsync("data-status", "completed", new() { Timeout = 40_000 });
        // It was shown running before it was shown completed: followed live, not only loaded at the end.
        var statuses = await second.EvaluateAsync<string[]>("() => window.secondTurnStatuses");
        Assert.Contains("running", statuses);
        Assert.True(Array.IndexOf(statuses, "running") < Array.LastIndexOf(statuses, "completed"), string.Join(" -> ", statuses));
        await Expect(me.Page.Locator(".turn").Nth(1)).ToHaveAttributeAsync("data-status", "completed");

        Assert.Equal(await me.Page.Locator(".turn").Nth(1).Locator(".markdown").InnerHTMLAsync(), await followed.Locator(".markdown").InnerHTMLAsync());
        var firstSeqs = await me.Page.Locator(".timeline li[data-seq]").EvaluateAllAsync<string[]>("els => els.map(e => e.dataset.seq)");
        var secondSeqs = await second.Locator(".timeline li[data-seq]").EvaluateAllAsync<string[]>("els => els.map(e => e.dataset.seq)");
        Assert.Equal(firstSeqs, secondSeqs);
        Assert.Equal(firstSeqs.Distinct().Count(), firstSeqs.Length);
        await second.ScreenshotAsync(new() { Path = Path.Combine(WebAppFixture.ScreenshotDirectory, "second-tab.png"), FullPage = true });
        Assert.Empty(me.PageErrors);
    }

    [Fact]
    public async Task StopDuringASlowToolShowsTheToolAndTheRunCancelledAndTheNextMessageWorks()
    {
        await using var me = await fixture.NewSessionAsync();
        await me.SignUpAsync();
        await me.SendAsync("[slow] how much do I spend?");
        var timeline = me.Page.Locator(".timeline");
        await Expect(timeline.Locator("li[data-type=tool_executing]").Filter(new() { HasText = "sleep" })).ToBeVisibleAsync();

        await me.Page.GetByRole(AriaRole.Button, new() { Name = "Stop run 1" }).ClickAsync();
        var first = me.Page.Locator(".turn").First;
        await Expect(first).ToHaveAttributeAsync("data-status", "cancelled", new() { Timeout = 5_000 });
        await Expect(timeline.Locator("li[data-type=tool_completed]").Filter(new() { HasText = "sleep" }).Locator(".badge")).ToHaveTextAsync("cancelled");
        await Expect(timeline.Locator("li[data-type=run_cancelled]")).ToContainTextAsync("Run cancelled (cancelled by user)");
        await Expect(me.Page.Locator(".run").First.Locator("h3 .badge")).ToHaveTextAsync("cancelled");
        await Expect(me.Page.GetByRole(AriaRole.Button, new() { Name = "Stop run 1" })).ToBeHiddenAsync();

        await me.SendAsync("and now?");
        var second = me.Page.Locator(".turn").Nth(1);
        await Expect(second).ToHaveAttributeAsync("data-status", "completed");
        await Expect(second.Locator(".markdown h3").First).ToBeVisibleAsync();
        await Expect(second.Locator(".bubble.user")).ToHaveTextAsync("You: and now?");

        await me.ScreenshotAsync("stop-slow-tool");
        Assert.Empty(me.PageErrors);
    }

    [Fact]
    public async Task TwoPeopleInTwoBrowsersSeeOnlyTheirOwnThreads()
    {
        await using var alice = await fixture.NewSessionAsync();
        await using var bob = await fixture.NewSessionAsync();
        await alice.SignUpAsync();
        await bob.SignUpAsync();
        await alice.SendAsync("alice's private question");
        var aliceThread = await alice.ThreadIdAsync();
        await bob.SendAsync("bob's private question");
        await bob.ThreadIdAsync();

        await Expect(alice.Page.Locator(".thread-list a")).ToHaveTextAsync(["alice's private question"]);
        await Expect(bob.Page.Locator(".thread-list a")).ToHaveTextAsync(["bob's private question"]);
        await bob.Page.ReloadAsync();
        await Expect(bob.Page.Locator(".thread-list a")).ToHaveTextAsync(["bob's private question"]);

        // Bob opening Alice's link sees nothing of it.
        await bob.Page.GotoAsync($"/#/t/{aliceThread}");
        await Expect(bob.Page.Locator(".thread-title")).ToHaveTextAsync("Thread not found");
        await Expect(bob.Page.Locator(".turn")).ToHaveCountAsync(0);
        await Expect(bob.Page.GetByLabel("Message", new() { Exact = true })).ToBeHiddenAsync();
        Assert.DoesNotContain("alice", await bob.Page.Locator("main").InnerTextAsync(), StringComparison.OrdinalIgnoreCase);

        await alice.ScreenshotAsync("isolation-alice");
        await bob.ScreenshotAsync("isolation-bob");
        Assert.Empty(alice.PageErrors);
        Assert.Empty(bob.PageErrors);
    }

    [Fact]
    public async Task ThreadsCanBeRenamedGivenAStrategyAndDeletedFromTheKeyboard()
    {
        await using var me = await fixture.NewSessionAsync();
        await me.SignUpAsync();
        await me.SendAsync("first thread");
        var threadId = await me.ThreadIdAsync();
        await Expect(me.Page.Locator(".turn").First).ToHaveAttributeAsync("data-status", "completed");

        await me.Page.GetByRole(AriaRole.Button, new() { Name = "Rename" }).FocusAsync();
        await me.Page.Keyboard.PressAsync("Enter");
        await me.Page.GetByLabel("Thread title").FillAsync("Renamed by keyboard");
        await me.Page.Keyboard.PressAsync("Enter");
        await Expect(me.Page.Locator(".thread-title")).ToHaveTextAsync("Renamed by keyboard");
        await Expect(me.Page.Locator(".thread-list a")).ToHaveTextAsync(["Renamed by keyboard"]);

        await me.Page.GetByLabel("While a run is active").SelectOptionAsync("reject");
        await Expect(me.Page.Locator(".note")).ToContainTextAsync("be refused");
        using var api = await me.ApiClientAsync();
        Assert.Equal("reject", (await api.GetThreadAsync(threadId)).Strategy);

        await me.Page.GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();
        await me.Page.Keyboard.PressAsync("Enter"); // the confirmation button has the focus
        await Expect(me.Page.Locator(".thread-list li")).ToHaveTextAsync(["No threads yet."]);
        Assert.Empty((await api.ListThreadsAsync()).Items);
        Assert.Empty(me.PageErrors);
    }

    [Fact]
    public async Task SignInErrorsAreShownInWordsAndTheSessionSurvivesAReload()
    {
        await using var me = await fixture.NewSessionAsync();
        me.Listen();
        await me.Page.GotoAsync("/");
        await me.Page.GetByLabel("Email").FillAsync("not-an-email");
        await me.Page.GetByLabel("Password").FillAsync("short");
        await me.Page.GetByRole(AriaRole.Button, new() { Name = "Create account" }).ClickAsync();
        await Expect(me.Page.Locator("#auth-error")).ToContainTextAsync("A valid email address is required.");
        await Expect(me.Page.Locator("#auth-error")).ToContainTextAsync("at least");

        await me.Page.GetByLabel("Email").FillAsync("nobody@example.com");
        await me.Page.GetByLabel("Password").FillAsync("wrong password here");
        await me.Page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Expect(me.Page.Locator("#auth-error")).ToHaveTextAsync("The email or password is wrong.");
        await me.ScreenshotAsync("sign-in-error");

        await me.SignUpAsync();
        await me.Page.ReloadAsync();
        await Expect(me.Page.GetByRole(AriaRole.Button, new() { Name = "Sign out" })).ToBeVisibleAsync();
        await me.Page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await Expect(me.Page.GetByRole(AriaRole.Button, new() { Name = "Sign in" })).ToBeVisibleAsync();
        await me.Page.ReloadAsync();
        await Expect(me.Page.GetByRole(AriaRole.Button, new() { Name = "Sign in" })).ToBeVisibleAsync();
        Assert.Empty(me.PageErrors);
    }

    [Fact]
    public async Task AnExpiredAccessTokenIsRefreshedWithoutThePersonNoticing()
    {
        await using var me = await fixture.NewSessionAsync();
        await me.SignUpAsync();
        var before = await me.Page.EvaluateAsync<JsonElement>("() => JSON.parse(localStorage.getItem('apex.session'))");
        // Pretend the access token is about to expire: the next request refreshes first (rotating the refresh token).
        await me.Page.EvaluateAsync("() => { const s = JSON.parse(localStorage.getItem('apex.session')); s.expires_at = Date.now(); localStorage.setItem('apex.session', JSON.stringify(s)); }");
        await me.Page.ReloadAsync();
        await me.SendAsync("still signed in?");
        await Expect(me.Page.Locator(".turn").First).ToHaveAttributeAsync("data-status", "completed");
        var after = await me.Page.EvaluateAsync<JsonElement>("() => JSON.parse(localStorage.getItem('apex.session'))");
        Assert.NotEqual(before.GetProperty("refresh_token").GetString(), after.GetProperty("refresh_token").GetString());
        Assert.True(after.GetProperty("expires_at").GetDouble() > before.GetProperty("expires_at").GetDouble());
        Assert.Empty(me.PageErrors);
    }
}
