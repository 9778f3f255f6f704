using Apex.Client;
using Apex.Tests.Agents;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Apex.Tests.WebApp;

/// <summary>The web app shows a tool call that waits for approval in the chat, with its arguments to edit, Approve and Reject.</summary>
[Collection(WebAppCollection.Name)]
public sealed class WebApprovalTests(WebAppFixture fixture)
{
    /// <summary>A run of the gated agent on a new thread of the person's, started over REST (the composer asks the shipped team), parked at its approval.</summary>
    private static async Task<(ApexClient Api, string ThreadId, string RunId)> ParkedAsync(BrowserSession me)
    {
        var api = await me.ApiClientAsync();
        await api.CreateAgentAsync(ApprovalTests.Gated);
        var thread = await api.CreateThreadAsync("cost, with approval");
        var sent = await api.SendMessageAsync(thread.Id, "what did my calls cost?", null, "gated");
        return (api, thread.Id, sent.Run.Id);
    }

    [Fact]
    public async Task AWaitingCallIsShownInTheChatAndApprovingItWithEditedArgumentsRunsThem()
    {
        await using var me = await fixture.NewSessionAsync(fixture.SlowServer);
        await me.SignUpAsync();
        var (api, threadId, runId) = await ParkedAsync(me);
        using var _ = api;
        await me.Page.GotoAsync($"/#/t/{threadId}");
        var turn = me.Page.Locator(".turn").First;
        await Expect(turn).ToHaveAttributeAsync("data-status", "waiting", new() { Timeout = 30_000 });
        var card = turn.Locator(".approval");
        await Expect(card).ToContainTextAsync("wants to run cost_breakdown");
        await Expect(me.Page.Locator(".timeline li[data-type=approval_requested]")).ToContainTextAsync("cost_breakdown");

        // Not JSON: refused in the page, nothing sent.
        var arguments = card.GetByLabel("Arguments (edit them to run it differently)");
        await arguments.FillAsync("{not json");
        await card.GetByRole(AriaRole.Button, new() { Name = "Approve" }).ClickAsync();
        await Expect(card.Locator(".error")).ToContainTextAsync("not JSON");
        Assert.Equal("waiting", (await api.GetRunAsync(runId)).Status);

        await arguments.FillAsync("""{"group_by":"day"}""");
        await me.ScreenshotAsync("approval-waiting");
        await card.GetByRole(AriaRole.Button, new() { Name = "Approve" }).ClickAsync();
        await Expect(turn).ToHaveAttributeAsync("data-status", "completed", new() { Timeout = 30_000 });
        await Expect(turn.Locator(".approval-done")).ToContainTextAsync("approved");
        await Expect(turn.Locator(".approval")).ToHaveCountAsync(0);
        await Expect(me.Page.Locator(".timeline li[data-type=approval_resolved]")).ToContainTextAsync("approved");
        await Expect(turn.Locator(".markdown")).ToContainTextAsync("cost_breakdown: {\"group_by\":\"day\"");
        var approval = Assert.Single(await api.ListApprovalsAsync(runId));
        Assert.Equal(("approved", "day"), (approval.Status, approval.EditedArguments!.Value.GetProperty("group_by").GetString()));
        Assert.Empty(me.PageErrors);
    }

    [Fact]
    public async Task RejectingInThePageSendsTheReasonAndAReloadShowsTheRunAsItEnded()
    {
        await using var me = await fixture.NewSessionAsync(fixture.SlowServer);
        await me.SignUpAsync();
        var (api, threadId, runId) = await ParkedAsync(me);
        using var _ = api;
        await me.Page.GotoAsync($"/#/t/{threadId}");
        var card = me.Page.Locator(".turn .approval");
        await card.GetByLabel("Reason").FillAsync("not this month");
        await card.GetByRole(AriaRole.Button, new() { Name = "Reject" }).ClickAsync();
        var turn = me.Page.Locator(".turn").First;
        await Expect(turn).ToHaveAttributeAsync("data-status", "completed", new() { Timeout = 30_000 });
        await Expect(turn.Locator(".approval-done")).ToContainTextAsync("rejected: not this month");
        await Expect(me.Page.Locator(".timeline li[data-type=tool_completed]").Filter(new() { HasText = "cost_breakdown" })).ToContainTextAsync("rejected");
        Assert.Equal(("rejected", "not this month"), (Assert.Single(await api.ListApprovalsAsync(runId)).Status, (await api.ListApprovalsAsync(runId))[0].Reason));

        // Replayed from seq 0, the answered request shows as answered: no buttons.
        await me.Page.ReloadAsync();
        await Expect(me.Page.Locator(".turn").First).ToHaveAttributeAsync("data-status", "completed");
        await Expect(me.Page.Locator(".turn .approval-done")).ToContainTextAsync("rejected");
        await Expect(me.Page.Locator(".turn .approval")).ToHaveCountAsync(0);
        Assert.Empty(me.PageErrors);
    }
}
