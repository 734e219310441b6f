"""Charts drawn in a frame of the height they ask for: where a title, a legend and axis
titles share that frame, the height must leave the plot room, or the plot is squeezed flat
and the titles are pushed out of the frame (the norm charts' titles were cut in half)."""

from ui.charts import loss_share_chart, norms_chart, stepping_charts


def test_the_norm_charts_ask_for_room_for_title_legend_and_plot():
    norms = [
        {"epoch": e, "layer": f"Linear {i} ({a}->{b})", "weight norm": 10.0 * e}
        for e in (1, 2) for i, (a, b) in enumerate([(784, 256), (256, 64), (64, 10)], 1)
    ]  # fmt: skip
    spec = norms_chart(norms, "weight norm", "Size of each layer's weights").to_dict()
    assert spec["height"] >= 300
    assert spec["encoding"]["color"]["legend"]["orient"] == "top"  # one row above the plot
    assert sorted(set(r["layer"] for r in spec["datasets"][spec["data"]["name"]])) == [
        "256→64", "64→10", "784→256",
    ]  # fmt: skip


def test_the_loss_share_chart_leaves_its_axis_title_room():
    # "share of the loss" beside a 150-pixel frame was cut to "share of the los"
    assert loss_share_chart([0.25] * 4, [1, 2, 3, 4]).to_dict()["height"] >= 220


def test_the_step_pages_charts_leave_their_titles_and_data_room():
    # at 200 pixels the loss chart's plot was so squeezed that its point stood above the
    # axis and its title was cut in half
    loss, accuracy = stepping_charts([(1, 2.43)], [(0, 0.1), (1, 0.11)])
    assert loss.to_dict()["height"] >= 300 and accuracy.to_dict()["height"] >= 300
